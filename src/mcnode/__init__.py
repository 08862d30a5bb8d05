"""mcnode: a validator node for a private-payments network (SCP consensus, RingCT txs)."""

__version__ = "0.1.0"
