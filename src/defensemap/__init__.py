"""defensemap: local-first, threat-informed defense."""

__version__ = "0.1.0"
