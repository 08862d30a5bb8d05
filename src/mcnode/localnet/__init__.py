"""A whole network on one machine: directories, keys, configs, processes, load."""
