"""Which loop a uintr_loop is built on: uvloop (the default where installed)
or asyncio's selector loop. Both wake through the loop's UPID."""
from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import re
import sys

from ._loop import UintrEventLoop

BASES = ("uvloop", "asyncio")


def uvloop_available() -> bool:
    """True if uvloop can be imported here."""
    return importlib.util.find_spec("uvloop") is not None


def running_without_gil() -> bool:
    """True on a free-threaded Python (3.13t) while the GIL is off."""
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
    return is_gil_enabled is not None and not is_gil_enabled()


UVLOOP_FREE_THREADED_SINCE = (0, 22)
"""The first uvloop release that declares free-threading support (its 0.22 changelog)."""


def uvloop_keeps_gil_off() -> bool:
    """True if the installed uvloop declares free-threading support, read from
    its metadata (importing an older one would turn the GIL back on)."""
    try:
        version = importlib.metadata.version("uvloop")
    except importlib.metadata.PackageNotFoundError:
        return False
    found = re.match(r"(\d+)\.(\d+)", version)
    return found is not None and (int(found[1]), int(found[2])) >= UVLOOP_FREE_THREADED_SINCE


def default_base() -> str:
    """``"uvloop"`` where it is installed, else ``"asyncio"``; ``"asyncio"``
    too where delivery is in hardware (the uvloop base is software-only), and
    on a free-threaded Python running without the GIL unless the installed
    uvloop declares free-threading support (0.22+): importing an older one
    would turn the GIL back on for the whole process (``base="uvloop"`` still
    asks for it)."""
    from ._backend import delivery_mode

    if (uvloop_available() and (not running_without_gil() or uvloop_keeps_gil_off())
            and delivery_mode() == "software"):
        return "uvloop"
    return "asyncio"


def check_base(base: str | None) -> str:
    """The base to use for ``base`` (None: the default); refuses unknown ones."""
    if base is None:
        return default_base()
    if base not in BASES:
        raise ValueError(f"base must be one of {', '.join(map(repr, BASES))} or None, got {base!r}")
    if base == "uvloop" and not uvloop_available():
        raise RuntimeError("base='uvloop' needs uvloop installed (pip install uvloop)")
    return base


def default_loop_class() -> type[asyncio.AbstractEventLoop]:
    """The loop class of the default base (``uintr_loop.EventLoop``)."""
    if default_base() == "uvloop":
        from ._uvloop import UintrUVLoop

        return UintrUVLoop
    return UintrEventLoop


def new_event_loop(
    *, base: str | None = None, busy_poll: float | str = "auto"
) -> asyncio.AbstractEventLoop:
    """A new uintr_loop event loop (also the loop factory for asyncio.Runner,
    anyio and pytest-asyncio).

    ``base``: ``"uvloop"`` (default where installed) or ``"asyncio"``.
    ``busy_poll``: ``"auto"`` (the default): the loop spins on its PIR
    before it blocks only while a post from a thread is expected soon, for
    about as long as recent posts took, and for a thread posting at a steady
    slower pace it wakes just before the next post is due and spins through
    its jitter (docs/design/adaptive-wakeup.md); a number: spin that many
    microseconds before every block (0: never). A thread whose
    ``call_soon_threadsafe`` finds the loop spinning lets go of the GIL for
    the loop to take at once. See
    ``statistics().busy_polls``/``busy_poll_hits``/``busy_poll_time``/
    ``busy_poll_alarms``/``busy_poll_yields``.

    Raises ValueError for an unknown ``base`` (RuntimeError for "uvloop"
    where it is not installed), TypeError/ValueError for a ``busy_poll``
    that is not "auto" or a number in 0..1000000, ValueError for an unknown
    ``UINTR_LOOP_MODE`` and HardwareUnavailableError for
    ``UINTR_LOOP_MODE=hardware`` where UINTR cannot be used.
    """
    if check_base(base) == "uvloop":
        from ._uvloop import UintrUVLoop

        return UintrUVLoop(busy_poll=busy_poll)
    return UintrEventLoop(busy_poll=busy_poll)
