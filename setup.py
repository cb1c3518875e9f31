"""Build the compiled core: cython_src/_core.pyx -> uintr_loop._core.

The public cimport API lives in uintr_loop/_core.pxd (shipped with the package);
cython_src/ holds _core.pyx with the files it includes under core/, the C
headers under includes/ and the hardware extension under hw/.

The hardware backend (uintr_loop._hardware) is built only where a test
compile shows the compiler takes -muintr -mgeneral-regs-only, an interrupt
handler with a struct __uintr_frame and the UINTR intrinsics; anywhere else
the build goes on without it and uintr_loop runs in software mode.
UINTR_LOOP_BUILD_HARDWARE=0 leaves it out on purpose.

Nothing test-only is built here: the test extension (tests/_testcore: the
fake hardware backend, UpidCell, half_post) is built in place by `make test`
(tests/_testcore/build.py), which reuses this file's BuildExt.
"""
import os
import platform
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wno-unused-function"]
UINTR_FLAGS = ["-muintr", "-mgeneral-regs-only"]
HW_SOURCE = "cython_src/hw/uintr_hw.c"
HW_INCLUDES = ["cython_src/includes", "cython_src/hw"]
HW_HEADERS = ["cython_src/includes/uintr_hw.h"]

_PROBE_SOURCE = r"""
#include <x86gprintrin.h>
void __attribute__((interrupt))
probe_handler(struct __uintr_frame *frame, unsigned long long vector)
{
    (void)frame; (void)vector;
}
void probe_instructions(unsigned long long index)
{
    _clui();
    _senduipi(index);
    _stui();
}
"""


def compiler_supports(flags, source=_PROBE_SOURCE):
    """True if the C compiler builds ``source`` with ``flags`` (a test compile)."""
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.errors import CompileError
    from setuptools._distutils.sysconfig import customize_compiler

    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "uintr_probe.c")
        with open(src, "w") as f:
            f.write(source)
        try:
            # silence the compiler's complaint when it fails: that is the answer
            with open(os.devnull, "w") as devnull:
                saved = os.dup(2)
                os.dup2(devnull.fileno(), 2)
                try:
                    compiler.compile([src], output_dir=tmp, extra_postargs=CFLAGS + list(flags))
                finally:
                    os.dup2(saved, 2)
                    os.close(saved)
        except (CompileError, OSError):
            return False
    return True


def want_hardware():
    """Build uintr_loop._hardware? (UINTR_LOOP_BUILD_HARDWARE=0 says no.)"""
    if os.environ.get("UINTR_LOOP_BUILD_HARDWARE", "auto").strip() == "0":
        print("uintr_loop: hardware backend left out (UINTR_LOOP_BUILD_HARDWARE=0)")
        return False
    if compiler_supports(UINTR_FLAGS):
        print("uintr_loop: compiler takes %s: building the hardware backend" % " ".join(UINTR_FLAGS))
        return True
    print("uintr_loop: compiler does not take %s: no hardware backend in this build "
          "(software mode only)" % " ".join(UINTR_FLAGS))
    return False


class BuildExt(build_ext):
    """Compiles each extension's ``c_object`` (the backend's C file) with its own
    flags, apart from the Cython glue: -mgeneral-regs-only would reject the
    CPython headers' floating-point code, and must hold for the handler."""

    def build_extension(self, ext):
        c_object = C_OBJECTS.get(ext.name)
        if c_object is not None:
            source, flags, macros = c_object
            objects = self.compiler.compile(
                [source],
                output_dir=os.path.join(self.build_temp, ext.name),
                macros=macros,
                include_dirs=ext.include_dirs,
                extra_postargs=CFLAGS + ["-fPIC"] + flags,
                depends=[source] + HW_HEADERS,
            )
            ext.extra_objects = list(objects)
        super().build_extension(ext)


C_OBJECTS = {}   # extension name -> (C source, its own flags, macros)


def hardware_extension(name, pyx, flags, macros, source=HW_SOURCE, includes=(), headers=()):
    """An extension over the backend's C source (compiled apart, BuildExt);
    ``includes``/``headers`` add directories and dependencies (the test
    extension's fake ABI)."""
    C_OBJECTS[name] = (source, flags, macros)
    return Extension(
        name, [pyx], include_dirs=list(includes) + HW_INCLUDES, extra_compile_args=CFLAGS,
        define_macros=macros, depends=[source] + HW_HEADERS + list(headers),
    )


def extensions(with_hardware):
    exts = [
        Extension(
            "uintr_loop._core",
            ["cython_src/_core.pyx", "cython_src/interp/gilword.c", "cython_src/interp/mainstate.c",
             "cython_src/interp/ctxsnap.c"],
            include_dirs=["cython_src/includes"],
            extra_compile_args=CFLAGS,
        ),
        Extension(
            "uintr_loop._native",
            ["cython_src/_native.pyx"],
            include_dirs=["cython_src/includes"],
            extra_compile_args=CFLAGS,
        ),
    ]
    if with_hardware:
        exts.append(hardware_extension("uintr_loop._hardware", "cython_src/hw/_hardware.pyx", UINTR_FLAGS, []))
    return exts


if __name__ == "__main__":
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"):
        sys.exit(
            "uintr_loop builds only on Linux x86-64 (found %s/%s): its core uses "
            "eventfd, memfd and x86 CPUID." % (sys.platform, platform.machine())
        )

    from Cython.Build import cythonize

    setup(
        ext_modules=cythonize(
            extensions(want_hardware()),
            include_path=[".", "cython_src/includes", "cython_src"],
            language_level=3,
            compiler_directives={"binding": True, "embedsignature": True},
        ),
        cmdclass={"build_ext": BuildExt},
    )
