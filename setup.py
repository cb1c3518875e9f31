"""Build the compiled core: cython_src/_core.pyx -> uintr_loop._core.

The public cimport API lives in uintr_loop/_core.pxd (shipped with the package);
cython_src/ holds the implementation and the C headers under includes/.
"""
import platform
import sys

from setuptools import Extension, setup

if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"):
    sys.exit(
        "uintr_loop builds only on Linux x86-64 (found %s/%s): its core uses "
        "eventfd, memfd and x86 CPUID." % (sys.platform, platform.machine())
    )

from Cython.Build import cythonize  # noqa: E402  (after the platform check)

CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wno-unused-function"]

extensions = [
    Extension(
        "uintr_loop._core",
        ["cython_src/_core.pyx"],
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

setup(
    ext_modules=cythonize(
        extensions,
        include_path=[".", "cython_src/includes"],
        language_level=3,
        compiler_directives={"binding": True, "embedsignature": True},
    )
)
