"""What the compiler made of the hardware backend, read from the binary.

No test here can enter the interrupt handler (that needs a UINTR CPU), so
these check, in the built uintr_loop._hardware, the properties the handler's
safety rests on: it ends with UIRET, makes no call (no PLT stub, whose lazy
binding would run the dynamic linker with vector registers), touches no
x87/SSE/AVX register, and its only syscall is the eventfd write. Skipped
where the backend was not built or objdump is missing, saying which.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from uintr_loop import _capabilities

OBJDUMP = shutil.which("objdump")

pytestmark = [
    pytest.mark.skipif(not _capabilities.BUILD_HAS_HARDWARE_BACKEND,
                       reason=f"hardware backend {_capabilities.BUILD_HARDWARE_BACKEND}"),
    pytest.mark.skipif(OBJDUMP is None, reason="objdump (binutils) not found on PATH"),
]


def disassemble(function: str) -> list[str]:
    from uintr_loop import _hardware

    assert OBJDUMP is not None
    out = subprocess.run(
        [OBJDUMP, "-d", "--no-show-raw-insn", f"--disassemble={function}", _hardware.__file__],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    body = out.split(f"<{function}>:", 1)[1]
    body = body.split("Disassembly of section", 1)[0]
    return [ln.split("\t", 1)[1].strip() for ln in body.splitlines() if "\t" in ln]


def test_handler_is_an_interrupt_routine_with_general_registers_only() -> None:
    insns = disassemble("uintr_hw_handler")
    assert insns, "uintr_hw_handler not found in the backend"
    mnemonics = [i.split()[0] for i in insns]
    assert "uiret" in mnemonics
    assert not [i for i in mnemonics if i.startswith("call") or i.startswith("jmp") and "*" in i]
    assert not [i for i in insns if re.search(r"%[xyz]mm|%st\b|%mm\d", i)]
    assert mnemonics.count("syscall") == 1        # the eventfd write, nothing else


def test_send_and_masking_use_the_uintr_instructions() -> None:
    assert any(i.startswith("senduipi") for i in disassemble("uintr_hw_send"))
    assert any(i.startswith("clui") for i in disassemble("uintr_hw_mask"))
    assert any(i.startswith("stui") for i in disassemble("uintr_hw_unmask"))
    assert any(i.startswith("stui") for i in disassemble("uintr_hw_bind"))
