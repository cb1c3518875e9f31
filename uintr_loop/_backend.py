"""Builds a new loop's Port in the mode ``uintr_loop._capabilities`` decides
(the one place that chooses how user interrupts are delivered); imports
``uintr_loop._hardware`` only once that mode is ``hardware``."""
from __future__ import annotations

import functools
from collections.abc import Callable

from ._capabilities import capabilities
from ._core import Port


def delivery_mode() -> str:
    """The mode new loops use (raises where hardware was asked for and is absent)."""
    return capabilities().mode


def hardware_receiver_factory(abi: str) -> Callable[[int], object]:
    """Builds the loop thread's HardwareReceiver for ``abi`` from the wake fd."""
    from . import _hardware  # built only with -muintr (see setup.py)

    factory: Callable[[int], object] = functools.partial(_hardware.HardwareReceiver, abi)
    return factory


def new_port() -> Port:
    """The Port of a new loop, in the mode chosen here."""
    caps = capabilities()
    if caps.mode != "hardware":
        return Port(caps.mode)
    assert caps.abi is not None     # hardware is chosen only with an ABI found
    return Port("hardware", hardware=hardware_receiver_factory(caps.abi))
