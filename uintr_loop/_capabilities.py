"""What this machine offers for user interrupts, probed without side effects.

The kernel ABI was never merged into mainline Linux, and mainline has since
given its syscall numbers to other calls (449 is futex_waitv since 5.16, 450
set_mempolicy_home_node, 451 cachestat, 452 fchmodat2, ...). So a syscall is
only tried where the kernel itself claims UINTR (the ``uintr`` flag in
/proc/cpuinfo, which only patched kernels print), and then only
uintr_register_sender(-1, 0), which fails with EBADF on a UINTR kernel and
registers nothing.

This module is also the one place that decides the mode:
``UINTR_LOOP_MODE`` = ``auto`` (default) | ``software`` | ``hardware``.
``auto`` picks hardware only where the CPU, the kernel ABI and this build all
allow it; everywhere else it is ``software`` and says why. ``hardware`` where
it cannot work raises HardwareUnavailableError naming every reason, rather
than falling back in silence. ``uintr_loop._backend`` builds ports in the
mode decided here.
"""
from __future__ import annotations

import errno
import functools
import os
import platform
from dataclasses import dataclass, field

from . import _core
from ._core import HardwareUnavailableError

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


# (ABI name, {syscall: number}) of the two published numberings: the table is
# C (includes/uintr_hw.h), written once; the core hands it over.
ABIS: dict[str, dict[str, int]] = {name: facts["numbers"] for name, facts in _core.abi_table().items()}


def _built_backend() -> tuple[bool, str]:
    """Whether uintr_loop._hardware was built (setup.py builds it only where
    the compiler takes -muintr -mgeneral-regs-only), and with what."""
    import importlib
    import importlib.util

    if importlib.util.find_spec(__package__ + "._hardware") is None:
        return False, ("not in this build (the compiler did not take -muintr "
                       "-mgeneral-regs-only, or UINTR_LOOP_BUILD_HARDWARE=0)")
    hardware = importlib.import_module(__package__ + "._hardware")
    return True, f"built with {hardware.BUILT_WITH}"


BUILD_HAS_HARDWARE_BACKEND, BUILD_HARDWARE_BACKEND = _built_backend()


@dataclass(frozen=True)
class Capabilities:
    """The probe's findings and the delivery mode they lead to."""

    cpu_uintr: bool | None
    cpuinfo_flag: bool
    kernel_release: str
    abi: str | None
    abi_probe: dict[str, str] = field(default_factory=dict)
    hardware_backend_built: bool = BUILD_HAS_HARDWARE_BACKEND
    requested: str = "auto"
    mode: str = "software"
    reason: str = ""
    hardware_why_not: tuple[str, ...] = ()

    def describe(self) -> str:
        lines = [
            f"mode:               {self.mode} (requested: {self.requested})",
            f"why:                {self.reason}",
            f"CPUID.7.0:EDX[5]:   {_yes_no(self.cpu_uintr)}",
            f"/proc/cpuinfo uintr:{' yes' if self.cpuinfo_flag else ' no'}",
            f"kernel:             {self.kernel_release}",
            f"kernel ABI:         {self.abi or 'none'}",
        ]
        for name, result in self.abi_probe.items():
            lines.append(f"  {name:17} {result}")
        lines.append(f"hardware backend:   {BUILD_HARDWARE_BACKEND}")
        for why in self.hardware_why_not:
            lines.append(f"  no hardware:      {why}")
        return "\n".join(lines)


def _yes_no(value: bool | None) -> str:
    return "unknown (no CPUID leaf 7)" if value is None else ("yes" if value else "no")


def _cpuinfo_has_uintr() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "uintr" in line.split(":", 1)[1].split()
    except OSError:
        pass
    return False


def _probe_abis(kernel_claims_uintr: bool) -> tuple[str | None, dict[str, str]]:
    results: dict[str, str] = {}
    found = None
    for abi, table in ABIS.items():
        nr = table["uintr_register_sender"]
        if not kernel_claims_uintr:
            results[abi] = f"not probed (syscall {nr}): kernel does not claim UINTR"
            continue
        rc = _core.raw_syscall2(nr, -1, 0)
        err = -rc if rc < 0 else 0
        if err in (errno.EBADF, errno.EINVAL):
            results[abi] = f"present (syscall {nr} -> {errno.errorcode[err]})"
            found = found or abi
        else:
            name = errno.errorcode.get(err, str(err)) if err else f"returned {rc}"
            results[abi] = f"absent (syscall {nr} -> {name})"
    return found, results


@functools.lru_cache(maxsize=None)
def _probe() -> tuple[bool | None, bool, str, str | None, tuple[tuple[str, str], ...]]:
    cpu = _core.cpuid_uintr()
    flag = _cpuinfo_has_uintr()
    abi, results = _probe_abis(flag)
    return cpu, flag, platform.release(), abi, tuple(results.items())


def capabilities() -> Capabilities:
    """Probe (once per process) and report CPU, kernel ABI and the mode.

    Raises HardwareUnavailableError when ``UINTR_LOOP_MODE=hardware`` and the
    hardware path cannot be used, ValueError for an unknown mode.
    """
    cpu, flag, release, abi, results = _probe()
    reasons = hardware_reasons(cpu, flag, abi, BUILD_HAS_HARDWARE_BACKEND)
    choice = choose_mode(not reasons, "; ".join(reasons))
    return Capabilities(
        cpu_uintr=cpu,
        cpuinfo_flag=flag,
        kernel_release=release,
        abi=abi,
        abi_probe=dict(results),
        requested=requested_mode(),
        mode=choice.mode,
        reason=choice.reason,
        hardware_why_not=tuple(reasons),
    )


def hardware_reasons(cpu: bool | None, cpuinfo_flag: bool, abi: str | None, built: bool) -> list[str]:
    """Every reason the hardware mode cannot be used (empty: it can)."""
    reasons = []
    if cpu is None:
        reasons.append("the CPU has no CPUID leaf 7, so no UINTR")
    elif not cpu:
        reasons.append("the CPU does not report UINTR (CPUID.(7,0):EDX[5] = 0)")
    if not cpuinfo_flag:
        reasons.append("the kernel does not claim UINTR (no 'uintr' flag in /proc/cpuinfo; "
                       "its syscalls were not probed)")
    elif abi is None:
        reasons.append("the kernel answers neither UINTR syscall numbering (449.. or 471..)")
    if not built:
        reasons.append("this build of uintr_loop has no hardware backend "
                       "(the compiler did not take -muintr -mgeneral-regs-only, or "
                       "UINTR_LOOP_BUILD_HARDWARE=0)")
    return reasons
