"""authgate: the front door of a private container registry."""

__version__ = "0.1.0"
