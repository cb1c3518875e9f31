# cython: language_level=3, freethreading_compatible=True
"""uintr_loop._hardware: the UINTR hardware backend (SENDUIPI, STUI/CLUI, the
kernel ABI under both published numberings, the interrupt handler).

Built only where the compiler takes -muintr -mgeneral-regs-only. Importing
it is harmless on any CPU; using it issues UINTR instructions and syscalls,
so the loop reaches it only through uintr_loop._backend, after the probe.
"""
from uintr_hw cimport *
from uintr_loop._core import ReceiverClosedError

FAKE = False
BUILT_WITH = "-muintr -mgeneral-regs-only"

include "hardware.pxi"
