"""fleet's core: the store, the queue, the supervisor loop and the command line."""

__version__ = "0.1.0"
