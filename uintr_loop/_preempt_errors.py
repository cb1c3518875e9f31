"""The exceptions of deadlines: DeadlineExceeded (raised inside the
interrupted code) and PreemptionUnavailableError (preemption needs the main
thread)."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._deadline import deadline

__all__ = ["DeadlineExceeded", "PreemptionUnavailableError"]


class DeadlineExceeded(asyncio.CancelledError):
    """Raised inside code interrupted at its deadline.

    A CancelledError (a BaseException), so ``except Exception`` in the
    interrupted code does not swallow it; the ``deadline`` scope that raised
    it turns it into ``TimeoutError`` when it exits.
    """

    def __init__(self, scope: deadline) -> None:
        super().__init__(f"deadline of {scope.seconds:g} s exceeded")
        self.scope = scope


class PreemptionUnavailableError(RuntimeError):
    """Preemption needs the main thread: CPython runs signal handlers only there."""

