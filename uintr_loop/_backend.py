"""The one place that chooses how user interrupts are delivered.

``UINTR_LOOP_MODE`` = ``auto`` (default) | ``software`` | ``hardware``.
``auto`` picks hardware only where the CPU, the kernel ABI and this build all
allow it (see ``uintr_loop._capabilities``); everywhere else it is
``software`` and says why. ``hardware`` where it cannot work raises
HardwareUnavailableError naming every reason, rather than falling back in
silence.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

from ._core import HardwareUnavailableError, Port

MODES = ("auto", "software", "hardware")
ENV_VAR = "UINTR_LOOP_MODE"


@dataclass(frozen=True)
class ModeChoice:
    requested: str
    mode: str
    reason: str


def requested_mode() -> str:
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"{ENV_VAR}={value!r}: expected one of {', '.join(MODES)}")
    return value


def choose_mode(hardware_usable: bool, hardware_why_not: str) -> ModeChoice:
    """Decide the mode from the environment and the hardware probe."""
    requested = requested_mode()
    if requested == "software":
        return ModeChoice(requested, "software", f"{ENV_VAR}=software")
    if hardware_usable:
        return ModeChoice(requested, "hardware", "CPU, kernel ABI and build support UINTR")
    if requested == "hardware":
        raise HardwareUnavailableError(f"{ENV_VAR}=hardware, but {hardware_why_not}")
    return ModeChoice(requested, "software", f"auto: {hardware_why_not}")


def delivery_mode() -> str:
    """The mode new loops use (raises where hardware was asked for and is absent)."""
    from ._capabilities import capabilities

    return capabilities().mode


def hardware_receiver_factory(abi: str) -> Callable[[int], object]:
    """Builds the loop thread's HardwareReceiver for ``abi`` from the wake fd."""
    from . import _hardware  # built only with -muintr (see setup.py)

    factory: Callable[[int], object] = functools.partial(_hardware.HardwareReceiver, abi)
    return factory


def new_port() -> Port:
    """The Port of a new loop, in the mode chosen here."""
    from ._capabilities import capabilities

    caps = capabilities()
    if caps.mode != "hardware":
        return Port(caps.mode)
    assert caps.abi is not None     # hardware is chosen only with an ABI found
    return Port("hardware", hardware=hardware_receiver_factory(caps.abi))
