"""Level 4: CPython and the project under the level-2 kernel (issue 15, "Stretch: Python").

The initramfs holds the project's own interpreter (``.venv/bin/python``, its
base installation's ``python3.11`` and ``libpython3.11.so``), the shared
libraries ``ldd`` names for it and the extension modules kept, its standard
library without what the guest never imports (see STDLIB_SKIP), pytest and
the plugins the project's pytest configuration names, and the uintr_loop
package as the venv has it (its compiled extensions included, _hardware
among them). Every .py file is precompiled to an unchecked-hash .pyc: the
initramfs gives every file the time 0, so timestamp-checked .pyc files would
all be stale and compiled again in the guest.

``kernel/python_init.c`` is /init: it runs Python in the guest and prints the
checks. hw_emu.py boots it through kernel_level() like levels 2, 3 and
2-intel, with more memory (PYTHON_MEMORY_MB).

Guest layout: /python/bin/python3.11 (PYTHONHOME=/python), /python/lib
(libpython), /lib64 and /lib/x86_64-linux-gnu (the C library and the other
shared libraries), /project (pyproject.toml and the three files under tests/
that test_hardware_real.py needs).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
KERNEL_DIR = HERE / "kernel"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON_MEMORY_MB = 512          # the initramfs (about 50 MB) is in memory twice while the kernel unpacks it

# Standard library parts the guest never imports: test suites, GUI, packaging
# and build support, documentation data. Names relative to lib/python3.11;
# any folder named test or tests goes too.
STDLIB_SKIP = {
    "test", "idlelib", "tkinter", "turtledemo", "turtle.py", "ensurepip", "lib2to3", "distutils", "pydoc_data",
    "config-3.11-x86_64-linux-gnu", "site-packages", "__pycache__", "venv", "sqlite3", "dbm", "curses",
    "__phello__", "ctypes", "msilib",
}
TEST_DIRS = {"test", "tests", "idle_test"}
# Extension modules left out: test modules, GUI, terminals, databases, and
# _ssl/_hashlib (libssl and libcrypto; asyncio runs without ssl, hashlib falls back to its own modules).
DYNLOAD_SKIP_PREFIXES = ("_test", "_ctypes", "_xxtestfuzz", "xxlimited", "_tkinter", "_curses", "readline", "nis.",
                         "spwd.", "_crypt.", "ossaudiodev.", "_sqlite3.", "audioop.", "_dbm.", "_gdbm.", "_ssl.",
                         "_hashlib.", "_xxsubinterpreters.")
# What pytest needs to run tests/test_hardware_real.py under the project's
# configuration (pyproject.toml: asyncio_mode, timeout): top-level names in
# site-packages and the distributions whose metadata goes with them. The guest
# loads the two plugins by name (PYTEST_DISABLE_PLUGIN_AUTOLOAD=1): the venv's
# other plugins (hypothesis, anyio) are not there.
SITE_PACKAGES = ["pytest", "_pytest", "py.py", "pluggy", "iniconfig", "packaging", "pygments", "pytest_asyncio",
                 "pytest_timeout.py", "typing_extensions.py"]
DISTRIBUTIONS = ["pytest", "pluggy", "iniconfig", "packaging", "pygments", "pytest_asyncio", "pytest_timeout",
                 "typing_extensions", "uintr_loop"]
TEST_FILES = ["tests/conftest.py", "tests/_support.py", "tests/test_hardware_real.py"]

GUEST_HOME = "python"          # PYTHONHOME in the guest, below /
GUEST_PROJECT = "project"


def venv_facts() -> dict[str, Any]:
    """Ask the venv's interpreter where its parts are (the script itself may run under another)."""
    if not VENV_PYTHON.exists():
        raise FileNotFoundError(f"no {VENV_PYTHON.relative_to(REPO)} (make build creates it)")
    code = (
        "import sys, sysconfig, json, importlib.metadata as m, importlib.util as u, os\n"
        "spec = u.find_spec('uintr_loop')\n"
        f"dists = {DISTRIBUTIONS!r}\n"
        "print(json.dumps({'version': sys.version.split()[0], 'tag': sys.implementation.cache_tag,\n"
        " 'base': sys.base_prefix, 'executable': os.path.realpath(sys.executable),\n"
        " 'stdlib': sysconfig.get_paths()['stdlib'], 'purelib': sysconfig.get_paths()['purelib'],\n"
        " 'libdir': sysconfig.get_config_var('LIBDIR'), 'ldlibrary': sysconfig.get_config_var('INSTSONAME'),\n"
        " 'ext_suffix': sysconfig.get_config_var('EXT_SUFFIX'),\n"
        " 'package': os.path.dirname(spec.origin),\n"
        " 'dists': {d: [m.version(d), str(m.distribution(d)._path)] for d in dists}}))\n"
    )
    r = subprocess.run([str(VENV_PYTHON), "-c", code], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"{VENV_PYTHON.relative_to(REPO)} could not say where its parts are: {r.stderr[-500:]}")
    parts: dict[str, Any] = json.loads(r.stdout)
    return parts


def ldd(path: Path) -> list[Path]:
    """The shared libraries ldd names for an ELF file (the loader included)."""
    r = subprocess.run(["ldd", str(path)], capture_output=True, text=True)
    libs = []
    for line in r.stdout.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
            libs.append(Path(parts[2]))
        elif parts and parts[0].startswith("/"):
            libs.append(Path(parts[0]))
    return libs


def copy_elf(src: Path, dst: Path) -> None:
    """Copy a program or shared library without its debug sections."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["strip", "--strip-debug", "-o", str(dst), str(src)], capture_output=True)
    if r.returncode != 0:
        shutil.copyfile(src, dst)
    os.chmod(dst, 0o755)


def copy_tree(src: Path, dst: Path, skip: frozenset[str] = frozenset()) -> None:
    def ignore(folder: str, names: list[str]) -> list[str]:
        top = Path(folder) == src
        return [n for n in names if (top and n in skip) or n in TEST_DIRS or n == "__pycache__"
                or n.endswith((".pyc", ".exe"))]
    shutil.copytree(src, dst, ignore=ignore, symlinks=False)


def compile_pyc(root: Path, guest: str, python: Path, logfile: Path) -> None:
    """Unchecked-hash .pyc for every .py under root; tracebacks name the guest's paths."""
    with open(logfile, "ab") as log:
        r = subprocess.run([str(python), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                            "-s", str(root), "-p", "/" + guest, str(root)], stdout=log, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise RuntimeError(f"compileall failed under {root} (log {logfile})")


def runtime_stamp(facts: dict[str, Any]) -> str:
    """What the cached interpreter part depends on: this file, the interpreter, the distributions."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(json.dumps({k: facts[k] for k in ("version", "executable", "stdlib")}, sort_keys=True).encode())
    h.update(json.dumps({d: v[0] for d, v in facts["dists"].items() if d != "uintr_loop"}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def build_runtime(cache: Path, facts: dict[str, Any], logfile: Path) -> Path:
    """The interpreter, its libraries, the trimmed stdlib and pytest: built once per stamp."""
    out = cache / "build" / "python" / "runtime"
    stamp_file = out.parent / "runtime-stamp"
    stamp = runtime_stamp(facts)
    if out.is_dir() and stamp_file.exists() and stamp_file.read_text().strip() == stamp:
        return out
    shutil.rmtree(out, ignore_errors=True)
    stamp_file.unlink(missing_ok=True)
    home = out / GUEST_HOME
    exe = Path(str(facts["executable"]))
    version = ".".join(str(facts["version"]).split(".")[:2])
    copy_elf(exe, home / "bin" / f"python{version}")
    (home / "bin" / "python3").symlink_to(f"python{version}")
    stdlib = Path(str(facts["stdlib"]))
    lib = home / "lib" / f"python{version}"
    copy_tree(stdlib, lib, skip=frozenset(STDLIB_SKIP))
    dynload = lib / "lib-dynload"
    for so in sorted(dynload.iterdir()):
        if so.name.startswith(DYNLOAD_SKIP_PREFIXES):
            so.unlink()
        else:
            copy_elf(stdlib / "lib-dynload" / so.name, so)
    purelib = Path(str(facts["purelib"]))
    site = lib / "site-packages"
    site.mkdir()
    for name in SITE_PACKAGES:
        src = purelib / name
        if not src.exists():
            raise FileNotFoundError(f"{name} is not in the venv's site-packages ({purelib})")
        if src.is_dir():
            copy_tree(src, site / name)
        else:
            shutil.copyfile(src, site / name)
    for dist, (_, path) in facts["dists"].items():
        if dist != "uintr_loop":
            shutil.copytree(path, site / Path(path).name)
    compile_pyc(home, GUEST_HOME, VENV_PYTHON, logfile)
    # The shared libraries: libpython by its soname in /python/lib, the rest where the host has them.
    elves = [home / "bin" / f"python{version}", *dynload.iterdir()]
    libs: set[Path] = set()
    for elf in elves:
        libs.update(ldd(elf))
    for dep in sorted(libs):
        if dep.name == facts["ldlibrary"]:
            copy_elf(dep, home / "lib" / dep.name)
        else:
            copy_elf(dep, out / str(dep).lstrip("/"))
    stamp_file.write_text(stamp + "\n")
    return out


def build_project(cache: Path, facts: dict[str, Any], logfile: Path) -> Path:
    """The uintr_loop package as the venv has it, its metadata, and the test files: rebuilt every run."""
    out = cache / "build" / "python" / "project"
    shutil.rmtree(out, ignore_errors=True)
    version = ".".join(str(facts["version"]).split(".")[:2])
    site = out / GUEST_HOME / "lib" / f"python{version}" / "site-packages"
    package = Path(str(facts["package"]))
    suffix = str(facts["ext_suffix"])

    def ignore(folder: str, names: list[str]) -> list[str]:
        # Only this interpreter's extensions (the tree also holds other Pythons' builds).
        return [n for n in names if n == "__pycache__" or (n.endswith(".so") and not n.endswith(suffix))]
    shutil.copytree(package, site / "uintr_loop", ignore=ignore)
    built = sorted(p.name for p in (site / "uintr_loop").glob("*.so"))
    if not any(n.startswith("_hardware.") for n in built):
        raise FileNotFoundError(f"the venv's uintr_loop ({package}) has no _hardware{suffix}: the compiler did not "
                                f"take -muintr, or UINTR_LOOP_BUILD_HARDWARE=0; built: {', '.join(built)}")
    for so in (site / "uintr_loop").glob("*.so"):
        copy_elf(package / so.name, so)
    meta = Path(str(facts["dists"]["uintr_loop"][1]))
    shutil.copytree(meta, site / meta.name, ignore=shutil.ignore_patterns("direct_url.json", "RECORD"))
    project = out / GUEST_PROJECT
    (project / "tests").mkdir(parents=True)
    shutil.copyfile(REPO / "pyproject.toml", project / "pyproject.toml")
    for rel in TEST_FILES:
        shutil.copyfile(REPO / rel, project / rel)
    compile_pyc(out / GUEST_HOME, GUEST_HOME, VENV_PYTHON, logfile)
    return out


def cpio_entries(root: Path) -> list[tuple[str, int, bytes, int]]:
    """(name, mode, data, rdev) for every folder, file and symbolic link under root, folders first."""
    entries = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        rel = Path(folder).relative_to(root)
        if rel != Path("."):
            entries.append((str(rel), 0o040755, b"", 0))
        for name in sorted(files) + sorted(d for d in dirs if (Path(folder) / d).is_symlink()):
            path = Path(folder) / name
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                entries.append((str(rel / name), 0o120777, os.readlink(path).encode(), 0))
            else:
                entries.append((str(rel / name), 0o100000 | (st.st_mode & 0o777), path.read_bytes(), 0))
    return entries


def merge(*trees: list[tuple[str, int, bytes, int]]) -> list[tuple[str, int, bytes, int]]:
    """Entries of several trees, each folder once (the first tree's), in order."""
    seen, out = set(), []
    for tree in trees:
        for entry in tree:
            if entry[0] in seen:
                continue
            seen.add(entry[0])
            out.append(entry)
    return out


def build_python(cache: Path) -> tuple[Path, tuple[tuple[str, int, bytes, int], ...]]:
    """Level 4's /init (kernel/python_init.c, static) and the initramfs entries of Python and the project."""
    out = cache / "build" / "python"
    out.mkdir(parents=True, exist_ok=True)
    logfile = cache / "logs" / "python-build.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    facts = venv_facts()
    runtime = build_runtime(cache, facts, logfile)
    project = build_project(cache, facts, logfile)
    init = out / "python_init"
    cmd = ["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-unused-function",
           f"-I{KERNEL_DIR}", "-o", str(init), str(KERNEL_DIR / "python_init.c")]
    with open(logfile, "ab") as log:
        r = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise RuntimeError(f"python_init.c did not build (log {logfile})")
    entries = merge([("sys", 0o040555, b"", 0), ("tmp", 0o041777, b"", 0)], cpio_entries(runtime),
                    cpio_entries(project))
    return init, tuple(entries)


def python_missing() -> list[str]:
    """What level 4 needs from the repository and is not there (empty: all there)."""
    try:
        facts = venv_facts()
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as e:
        return [str(e)]
    package = Path(str(facts["package"]))
    if not (package / f"_hardware{facts['ext_suffix']}").exists():
        return [f"uintr_loop._hardware in the venv's package ({package}; the compiler did not take -muintr, "
                "or UINTR_LOOP_BUILD_HARDWARE=0)"]
    return []


def python_version() -> str:
    """The venv interpreter's version, for the level's description ("?" where there is none)."""
    try:
        return str(venv_facts()["version"])
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError):
        return "?"
