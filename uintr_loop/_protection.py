"""Where a deadline may land: the code a deadline never interrupts (the
whole stack between the interrupted frame and the scope's own is looked at),
the handler gap CPython 3.13 leaves at some backward jumps, and the masked
sections (preemption_masked(), a task receiver's masked() and handler).
The timer (_doorbell) asks these; none of them changes any state but the
mask depths."""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dis
import importlib
import logging
import os
import sys
from collections.abc import Iterator
from types import CodeType, FrameType
from typing import Any

from . import _core

# Python code a deadline never interrupts, nor any code it calls (it retries
# 50 us later): the event loop's and this library's, and the standard-library
# code that keeps an invariant over several statements: lock and condition
# bookkeeping (threading), queue.Queue's counters (queue), logging's handler
# and module locks (logging), exit stacks and generator context managers
# (contextlib), finalizers and weakref callbacks (weakref, _weakrefset, where
# CPython discards exceptions), selectors, subprocess's child bookkeeping and
# the import system. Protection covers the whole stack between the code
# interrupted and the scope's own frame, as trio's KeyboardInterrupt
# protection does: a deadline that lands in a logging handler's emit() runs
# with the handler's lock held by logging's frame further up, so it waits
# until logging has released it. Everything else in the standard library (a
# long difflib or json call, say) stays interruptible.
_PROTECTED_MODULES = ("threading", "queue", "contextlib", "weakref", "_weakrefset",
                      "selectors", "subprocess")
_PROTECTED_PACKAGES = (asyncio, concurrent.futures, logging, importlib,
                       sys.modules[__package__])
_MACHINERY = tuple(
    [os.path.dirname(os.path.abspath(m.__file__)) + os.sep
     for m in _PROTECTED_PACKAGES if m.__file__]
    + [os.path.abspath(m.__file__)
       for m in map(importlib.import_module, _PROTECTED_MODULES) if m.__file__]
    + ["<frozen importlib."]
)


def is_machinery(frame: FrameType) -> bool:
    code = frame.f_code
    return code.co_filename.startswith(_MACHINERY) or code.co_name == "__del__"


def protected(frame: FrameType, entry: FrameType | None) -> bool:
    """``frame``, or a frame between it and the scope's ``entry`` frame (the
    one whose ``with`` entered it, itself not looked at unless it is
    ``frame``), is code a deadline must not interrupt. If ``entry`` is not
    on the stack, only ``frame`` counts."""
    if is_machinery(frame):
        return True
    if entry is None or frame is entry:
        return False
    inner: list[FrameType] = []
    f = frame.f_back
    while f is not None and f is not entry:
        inner.append(f)
        f = f.f_back
    return f is entry and any(map(is_machinery, inner))


mask_depth: dict[int, int] = {}    # id(task) or 0 (no task) -> depth

# CPython 3.13 sometimes lays out the backward jump that closes a `while`
# loop outside the exception-table range of the try/with around it
# (python/cpython#130279): an exception raised by a signal handler *at that
# jump* skips the enclosing handlers and __exit__, as KeyboardInterrupt does
# there (seen here on 3.13.0 within ten short deadlines around
# `while cond: pass`). So a ring that lands on a backward jump that no
# handler covers, right after an instruction that one does, retries (the
# next boundary is a call or the next iteration); after GAP_RETRIES in a row
# it raises anyway, as Ctrl-C would.
GAP_RETRIES = 20
_BACKWARD_JUMPS = frozenset(
    dis.opmap[name] for name in ("JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT")
    if name in dis.opmap)
# id(code) -> (code, co_code, handler ranges); by id, because hashing a code
# object hashes its bytecode (microseconds, on every ring)
_code_info: dict[int, tuple[CodeType, bytes, tuple[tuple[int, int], ...]]] = {}


def in_handler_gap(frame: FrameType) -> bool:
    code = frame.f_code
    lasti = frame.f_lasti
    if not _BACKWARD_JUMPS or lasti < 2:
        return False
    info = _code_info.get(id(code))
    if info is None or info[0] is not code:
        # co_code is rebuilt on every access from 3.11 on: cache it
        parse = getattr(dis, "_parse_exception_table", None)
        ranges = tuple((e.start, e.end) for e in parse(code)) if parse else ()
        if len(_code_info) > 1024:
            _code_info.clear()
        info = _code_info[id(code)] = (code, code.co_code, ranges)
    _, co_code, ranges = info
    if lasti >= len(co_code) or co_code[lasti] not in _BACKWARD_JUMPS:
        return False

    def covered(offset: int) -> bool:
        return any(start <= offset < end for start, end in ranges)

    return not covered(lasti) and covered(lasti - 2)


def _unit_key() -> int:
    loop = asyncio._get_running_loop()
    task = _core.running_task(loop) if loop is not None else None
    return id(task) if task is not None else 0


@contextlib.contextmanager
def preemption_masked() -> Iterator[None]:
    """No deadline interrupts the current task (or callback) inside the
    block (CLUI for preemption); one that passed meanwhile lands right after.
    Nests."""
    key = _unit_key()
    mask_depth[key] = mask_depth.get(key, 0) + 1
    try:
        yield
    finally:
        depth = mask_depth[key] - 1
        if depth:
            mask_depth[key] = depth
        else:
            del mask_depth[key]


def receiver_protects(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> bool:
    """The task's receiver is masked or running its handler."""
    shim = getattr(loop, "_uintr_shim", None)
    if shim is None:
        return False
    return bool(shim.protects(task))

