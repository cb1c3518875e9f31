"""Build the test-only extension in place: tests/_testcore/_cells and
tests/_testcore/_hardware_fake (run from the repository's root by `make test`'s
build step; never by `pip install .`, so the product ships none of it).

It reuses setup.py's compiler set-up (its BuildExt compiles the hardware
backend's C source apart, with its own flags); the fake hardware module is the
same C source over fake_abi.h, here. Test code reaches the core's state only
through uintr_loop/_core.pxd (Cython's C-API capsules): a header's static
state is per extension, so a copy of it here would be another state.
"""
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _product_setup():
    """setup.py as a module (not __main__: defines, builds nothing)."""
    spec = importlib.util.spec_from_file_location("uintr_loop_setup", os.path.join(ROOT, "setup.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    os.chdir(ROOT)
    product = _product_setup()
    from Cython.Build import cythonize
    from setuptools import Extension, setup

    here = os.path.relpath(HERE, ROOT)
    exts = [
        Extension(
            "_testcore._cells",
            [os.path.join(here, "_cells.pyx"), "cython_src/interp/gilword.c"],
            include_dirs=[here, "cython_src/includes"],
            extra_compile_args=product.CFLAGS,
            depends=[os.path.join(here, "pacedpost.h"), os.path.join(here, "ctxwatch.h")],
        ),
        Extension(
            "_testcore._state",
            [os.path.join(here, "_state.pyx")],
            extra_compile_args=product.CFLAGS,
        ),
        product.hardware_extension(
            "_testcore._hardware_fake", os.path.join(here, "_hardware_fake.pyx"), [],
            [("UINTR_FAKE_ABI", "1")], includes=[here], headers=[os.path.join(here, "fake_abi.h")],
        ),
    ]
    setup(
        name="uintr_loop_testcore",
        script_args=["-q", "build_ext", "--build-lib", os.path.dirname(here),
                     "--build-temp", os.path.join("build", "testcore")],
        ext_modules=cythonize(
            exts,
            include_path=[".", "cython_src/includes", "cython_src", "cython_src/hw", here],
            language_level=3,
            compiler_directives={"binding": True, "embedsignature": True},
            quiet=True,
        ),
        cmdclass={"build_ext": product.BuildExt},
        packages=[],
        py_modules=[],
    )


if __name__ == "__main__":
    sys.exit(main())
