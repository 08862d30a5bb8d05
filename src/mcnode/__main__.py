"""`python -m mcnode` is the `mcnode` command."""

from mcnode.cli import main

main()
