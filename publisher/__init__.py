"""publisher: one published article, delivered to every channel of a media matrix."""

__version__ = "0.1.0"
