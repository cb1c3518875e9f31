"""Fail at import, with a clear message, where uintr_loop cannot run."""
from __future__ import annotations

import platform
import sys

SUPPORTED = "CPython 3.11+ on Linux x86-64"


def check_platform() -> None:
    machine = platform.machine()
    if not sys.platform.startswith("linux") or machine not in ("x86_64", "AMD64"):
        raise ImportError(
            f"uintr_loop supports {SUPPORTED}; this is {sys.platform}/{machine}. "
            "Its core needs Linux's eventfd and memfd and x86's CPUID."
        )
    if sys.version_info < (3, 11):
        raise ImportError(f"uintr_loop supports {SUPPORTED}; this is Python {sys.version.split()[0]}")
