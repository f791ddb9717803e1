"""poetry-lstm: finish a five-character quatrain from its first line (see README.md)."""

__version__ = "0.1.0"
