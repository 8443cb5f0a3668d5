"""A scan's context: its cancel switch and its time budget, carried by every request.

Like Go's ``context.Context``: a scan makes one, every request it sends
carries it, and each layer of the transport asks it whether to go on, so a
cancelled or timed-out scan sends nothing more and sleeps through no backoff.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from regdata.errors import BudgetExceeded, Cancelled

__all__ = ["Context"]


@dataclass(eq=False)  # identity semantics: a context is a switch, not a value
class Context:
    """Cancel switch and deadline (on the monotonic clock) of a unit of work."""

    deadline: float | None = None
    parent: Context | None = None
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    @classmethod
    def with_budget(cls, seconds: float | None, parent: Context | None = None) -> Context:
        """A context that times out ``seconds`` from now (never, for None)."""
        deadline = None if seconds is None else time.monotonic() + seconds
        if parent is not None and parent.deadline is not None:
            deadline = parent.deadline if deadline is None else min(deadline, parent.deadline)
        return cls(deadline=deadline, parent=parent)

    def cancel(self) -> None:
        """Stop the work: requests not yet sent will not be sent."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        """True once cancel() was called here or on a parent."""
        return self._cancelled.is_set() or (self.parent is not None and self.parent.cancelled)

    def remaining(self) -> float | None:
        """Seconds left before the deadline; None when there is none."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def check(self) -> None:
        """Raise Cancelled or BudgetExceeded when the work must stop."""
        if self.cancelled:
            raise Cancelled("cancelled")
        left = self.remaining()
        if left is not None and left <= 0:
            raise BudgetExceeded("timed out: the scan's time budget ran out")

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early (and raising) when cancelled or past the deadline."""
        left = self.remaining()
        if left is not None and seconds >= left:
            self._wait(max(left, 0))
            self.check()
            raise BudgetExceeded("timed out: the scan's time budget ran out")
        self._wait(seconds)
        self.check()

    def _wait(self, seconds: float) -> None:
        # Poll in short steps so a parent's cancel also wakes us.
        end = time.monotonic() + seconds
        while not self.cancelled:
            step = end - time.monotonic()
            if step <= 0:
                return
            self._cancelled.wait(min(step, 0.05))


BACKGROUND = Context()
