"""lovewire: the real-time backend of a dating and social app."""

__version__ = "0.1.0"
