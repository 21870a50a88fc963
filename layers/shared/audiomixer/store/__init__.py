"""Data access: PynamoDB models, S3 keys, and the status state machine."""

from audiomixer.store import keys, models

__all__ = ["keys", "models"]
