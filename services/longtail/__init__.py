"""longtail: a data engine for fleet learning. This package holds what every service shares."""

__version__ = "0.1.0"
