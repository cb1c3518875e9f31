"""What both uintr loops add to their base: the same API on each."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ._core import Port, loop_run_begin, loop_run_end, loop_statistics
from ._types import LoopStatistics
from ._watchdog import HogReport, HogWatchdog, set_hog_watchdog


class UintrLoopAPI:
    """Mixed into UintrEventLoop and UintrUVLoop (before their base class)."""

    _uintr_port: Port | None
    _uintr_mode: str
    _uintr_final_statistics: LoopStatistics | None

    if TYPE_CHECKING:
        def is_running(self) -> bool: ...
        def is_closed(self) -> bool: ...
        def get_debug(self) -> bool: ...

    def _uintr_init(self, port: Port) -> None:
        self._uintr_port = port
        self._uintr_mode = port.mode
        self._uintr_final_statistics = None

    def _uintr_close_port(self) -> None:
        """After the base loop closed: shut the receivers down, keep the
        final figures."""
        port = self._uintr_port
        if port is not None:
            port.close()
            self._uintr_final_statistics = loop_statistics(port)
            self._uintr_port = None

    def set_hog_watchdog(
        self, threshold: float | None, callback: Callable[[HogReport], object] | None = None
    ) -> HogWatchdog | None:
        """Report, live, the stack of a callback running longer than
        ``threshold`` seconds (``None``: off). See uintr_loop._watchdog.

        Raises TypeError/ValueError for a bad ``threshold`` or ``callback``
        and RuntimeError on a closed loop (stopping is always allowed)."""
        return set_hog_watchdog(self, threshold, callback)  # type: ignore[arg-type]

    @property
    def busy_poll(self) -> float | str:
        """``"auto"`` (the default: the adaptive wakeup decides when and how
        long to spin, see docs/design/adaptive-wakeup.md) or the microseconds
        the loop spins on its PIR before every block (0: never).

        Setting it raises TypeError (not a number or "auto", or a bool),
        ValueError (outside 0..1000000) or RuntimeError (the loop is closed)."""
        port = self._uintr_port
        if port is None:
            return 0.0
        value = port.busy_poll
        return value if isinstance(value, str) else float(value)

    @busy_poll.setter
    def busy_poll(self, microseconds: float | str) -> None:
        # TypeError (not a number or "auto", or a bool), ValueError (not in
        # 0..1e6), RuntimeError once closed. A single store: any thread.
        if self._uintr_port is None:
            raise RuntimeError("Event loop is closed")
        self._uintr_port.busy_poll = microseconds

    @property
    def delivery_mode(self) -> str:
        """``"software"`` or ``"hardware"``: how this loop's interrupts travel."""
        return self._uintr_mode

    def statistics(self) -> LoopStatistics:
        """An immutable LoopStatistics: the loop's own receiver (wakeup posts
        and receiver notifications; ``delivered`` counts the vectors the loop
        recognised) and the loop's time: iterations, busy and idle time, wake
        latency (see docs/guide/statistics.md). Any thread. After close, the
        figures as they were at close."""
        port = self._uintr_port
        if port is None:
            assert self._uintr_final_statistics is not None
            return self._uintr_final_statistics
        return loop_statistics(port)

    def run_forever(self) -> None:
        """As the base loop's; each run's time counts in statistics()."""
        port = self._uintr_port
        if port is None or self.is_running():
            super().run_forever()  # type: ignore[misc]  # raises as the base does
            return
        loop_run_begin(port)
        try:
            super().run_forever()  # type: ignore[misc]
        finally:
            loop_run_end(port)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()} mode={self.delivery_mode}>"
        )
