"""The sandbox's own error: the demo machinery is no part of the client's exception tree."""

from __future__ import annotations

from regdata.errors import RegdataError

__all__ = ["SandboxError"]


class SandboxError(RegdataError):
    """The sandbox registry cannot start, or its data cannot be read or pushed."""
