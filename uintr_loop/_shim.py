"""Installing the scheduler shim on a loop (the hook every uintr loop calls).

The shim itself is compiled (cython_src/core/shim.pxi, with the design notes);
this module is the one place that decides whether a loop gets it.
"""
from __future__ import annotations

import asyncio
import os

from ._core import Shim, TaskReceiverError

__all__ = ["Shim", "TaskReceiverError", "install_shim", "shim_of", "uninstall_shim"]


def install_shim(loop: asyncio.AbstractEventLoop) -> Shim | None:
    """Give ``loop`` the scheduler shim: tasks may then become receivers.

    Called by the uintr loops' ``__init__`` (on by default). Set
    ``UINTR_LOOP_SHIM=0`` in the environment to make loops without it, or call
    ``uninstall_shim(loop)``. Works on any loop whose ``call_soon`` is looked
    up as a method and whose instances take attributes. Idempotent; any
    thread. Raises TypeError if ``loop`` is not an event loop and
    RuntimeError if it is closed.
    """
    _check_loop(loop)
    if loop.is_closed():
        raise RuntimeError("Event loop is closed")
    if os.environ.get("UINTR_LOOP_SHIM", "1") == "0":
        return None
    shim = shim_of(loop)
    if shim is None:
        shim = Shim(loop)
        loop._uintr_shim = shim  # type: ignore[attr-defined]
    shim.install()
    return shim


def uninstall_shim(loop: asyncio.AbstractEventLoop) -> None:
    """Remove the shim's hook (TaskReceiverError while a task receiver is
    open; TypeError if ``loop`` is not an event loop). Idempotent, also on a
    closed loop."""
    _check_loop(loop)
    shim = shim_of(loop)
    if shim is not None:
        shim.uninstall()


def _check_loop(loop: object) -> None:
    if not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"expected an asyncio event loop, got {type(loop).__name__}")


def shim_of(loop: asyncio.AbstractEventLoop) -> Shim | None:
    """The loop's shim, or None."""
    shim = getattr(loop, "_uintr_shim", None)
    return shim if isinstance(shim, Shim) else None
