"""uintr_loop: an asyncio event loop woken by user interrupts."""
from __future__ import annotations

import importlib.metadata as _metadata
from typing import TYPE_CHECKING

from ._platform import check_platform as _check_platform

_check_platform()

from ._bases import new_event_loop  # noqa: E402
from ._capabilities import Capabilities, capabilities  # noqa: E402
from ._core import (  # noqa: E402
    HardwareUnavailableError,
    InvalidVectorFdError,
    Receiver,
    ReceiverClosedError,
    Sender,
    SenderClosedError,
    TaskReceiverError,
    VectorFd,
)
from ._deadline import (  # noqa: E402
    DeadlineExceeded,
    PreemptionUnavailableError,
    deadline,
    preemptible,
    preemption_masked,
)
from ._export import hog_reporter, log_statistics  # noqa: E402
from ._fds import recv_fds, send_fds  # noqa: E402
from ._loop import UintrEventLoop  # noqa: E402
from ._otel import OtelInstrumentation, instrument_otel  # noqa: E402
from ._policy import UintrPolicy, run  # noqa: E402
from ._shim import install_shim, uninstall_shim  # noqa: E402
from ._types import LoopStatistics, ReceiverStatistics, WakeLatency  # noqa: E402
from ._watchdog import HogReport  # noqa: E402


if TYPE_CHECKING:
    import asyncio

    from ._uvloop import UintrUVLoop

    #: The default base's loop class (UintrUVLoop where uvloop is installed and
    #: delivery is in software, else UintrEventLoop), for loop_factory=.
    EventLoop: type[asyncio.AbstractEventLoop]


def __getattr__(name: str) -> object:
    # The uvloop base is imported only when asked for (uvloop is optional).
    if name == "UintrUVLoop":
        from ._uvloop import UintrUVLoop

        return UintrUVLoop
    # EventLoop: the default base's loop class, as asyncio.EventLoop and
    # uvloop.EventLoop are theirs: asyncio.run(main(), loop_factory=EventLoop)
    # (3.12+), asyncio.Runner(loop_factory=EventLoop) (3.11+). Looked up on
    # each access: the default follows UINTR_LOOP_MODE and whether uvloop is
    # installed.
    if name == "EventLoop":
        from ._bases import default_loop_class

        return default_loop_class()
    raise AttributeError(f"module 'uintr_loop' has no attribute {name!r}")


# The version is written once, in pyproject.toml; the installed metadata
# (an editable install has it too) carries it here.
try:
    __version__: str = _metadata.version("uintr_loop")
except _metadata.PackageNotFoundError:      # a source tree never installed
    __version__ = "0+unknown"

__all__ = [
    "Capabilities",
    "DeadlineExceeded",
    "EventLoop",
    "HardwareUnavailableError",
    "HogReport",
    "InvalidVectorFdError",
    "LoopStatistics",
    "OtelInstrumentation",
    "PreemptionUnavailableError",
    "Receiver",
    "ReceiverClosedError",
    "ReceiverStatistics",
    "Sender",
    "SenderClosedError",
    "TaskReceiverError",
    "UintrEventLoop",
    "UintrPolicy",
    "UintrUVLoop",
    "VectorFd",
    "WakeLatency",
    "capabilities",
    "deadline",
    "hog_reporter",
    "install_shim",
    "instrument_otel",
    "log_statistics",
    "new_event_loop",
    "preemptible",
    "preemption_masked",
    "recv_fds",
    "run",
    "send_fds",
    "uninstall_shim",
]
