"""What every subcommand shares: the error type for problems the user can fix."""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(Exception):
    """A problem with the user's input, reported as one line."""
