#!/usr/bin/env python3
"""Run the project's UINTR code on an emulated Sapphire Rapids (Bochs 3.0).

``make hw-emu`` runs this script. It builds whatever is missing, in a cache
outside the repository (``$UINTR_LOOP_HW_EMU_CACHE``, by default
``~/.cache/uintr_loop/hw-emu``), runs every level that exists and prints one
table of checks; the exit status is non-zero if any check failed or a level
that exists did not finish.

Levels (docs/design/hardware-emulated.md says what each one proves):

1. *freestanding*: no Linux. A boot sector, a ring-0 test monitor that
   programs the UINTR MSRs, UPID and UITT the way Intel's uintr-linux-kernel
   branch does, and a ring-3 test program around the project's own backend
   (``cython_src/hw/uintr_hw.c``, unchanged, with its build flags). Booted
   by Bochs with two CPUs of the ``sapphire_rapids`` model, twice: level
   ``1`` with the branch's syscall numbers, ``1-rfc`` with the RFC's.
2. *kernel*: UINTR kernel support on Debian's linux-source-6.1
   (``kernel/linux-6.1-uintr.patch``), built once into the cache, booted on
   two emulated CPUs with a static selftest (``kernel/uintr_selftest.c``) as
   ``/init``; the table says how many CPUs the guest had online.
3. *backend under that kernel*: ``kernel/backend_harness.c``, a static program
   linking the project's backend (``cython_src/hw/uintr_hw.c``, unchanged, the
   project's flags), as ``/init`` of the same kernel on two CPUs.

4. *CPython under that kernel*: the project's venv interpreter, its trimmed
   standard library, pytest and the uintr_loop package as the venv has it
   (``python_level.py`` puts them in the initramfs), with
   ``kernel/python_init.c`` as ``/init``: the capability probe, a loop in
   hardware mode and ``pytest tests/test_hardware_real.py`` in the guest.

``2-intel``, optional: Intel's own selftests (``tools/testing/selftests/uintr``
of the uintr-linux-kernel branch) under the level-2 kernel, when the cache
holds their sources (``<cache>/intel-selftests``, see ``intel_missing()``);
they are built there and never enter the repository. ``kernel/intel_runner.c``
is ``/init`` and runs them one by one, one check per test.

What is cached: the Bochs source (Debian's ``bochs_3.0+dfsg.orig.tar.xz``,
fetched with ``apt-get source``), its build, the kernel tree and its build,
the test images, level 4's copy of the interpreter, the run logs. Nothing is
written into the repository.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
import python_level  # noqa: E402

BOCHS_TARBALL = "bochs_3.0+dfsg.orig.tar.xz"
BOCHS_TARBALL_SHA256 = "78f6c73d4a6472d5130a87ab9dc306d02c7c71ed8e25b3a8ef642e2a7acd282b"
# --disable-show-ips: the IPS display logs from a SIGALRM handler, and logging takes
# a mutex; an alarm that lands while the emulator is itself logging leaves it asleep
# on that mutex for good (seen here in about one run in ten: Bochs in futex_wait,
# the guest frozen wherever it was).
BOCHS_CONFIGURE = [
    "--enable-x86-64", "--enable-smp", "--enable-uintr", "--enable-avx", "--enable-evex",
    "--enable-cpu-level=6", "--with-nogui", "--enable-all-optimizations", "--disable-plugins",
    "--disable-show-ips",
]
BOCHS_APT_HINT = (
    "add a source entry for Debian trixie (e.g. /etc/apt/sources.list.d/trixie-src.sources with "
    "'Types: deb-src', 'URIs: http://deb.debian.org/debian', 'Suites: trixie', 'Components: main', "
    "'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'), run apt-get update, or put "
    f"{BOCHS_TARBALL} into <cache>/src yourself"
)
BOCHS_PATCH = HERE / "bochs-3.0-uintr.patch"   # two UINTR fixes (see its header)
LEVEL1_TIMEOUT = 900   # seconds of wall time for one Bochs run


def cache_dir() -> Path:
    """The build cache: $UINTR_LOOP_HW_EMU_CACHE or ~/.cache/uintr_loop/hw-emu."""
    env = os.environ.get("UINTR_LOOP_HW_EMU_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    return Path.home() / ".cache" / "uintr_loop" / "hw-emu"


@dataclass
class Check:
    level: str
    name: str
    ok: bool
    detail: str


@dataclass
class LevelResult:
    level: str
    state: str                 # "ran", "not built", "build failed", "did not finish"
    where: str                 # what it ran on, said exactly
    seconds: float = 0.0
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        if self.state in ("not built", "skipped"):
            return False
        return self.state != "ran" or any(not c.ok for c in self.checks)


def log(msg: str) -> None:
    print(f"hw-emu: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], cwd: Path | None = None, logfile: Path | None = None, nice: bool = False) -> None:
    """Run a build step; its output goes to logfile; raise with the log's tail on failure."""
    if nice and shutil.which("nice"):
        cmd = ["nice", "-n", "10", *cmd]
    if logfile is None:
        subprocess.run(cmd, cwd=cwd, check=True)
        return
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "ab") as f:
        f.write(("\n$ " + " ".join(cmd) + "\n").encode())
        f.flush()
        r = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-20:]
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}); log {logfile}:\n" + "\n".join(tail))


# ---- Bochs --------------------------------------------------------------

def bochs_paths(cache: Path) -> dict[str, Path]:
    prefix = cache / "bochs"
    return {
        "bochs": prefix / "bin" / "bochs",
        "bios": prefix / "share" / "bochs" / "bios.bin-1.13.0",
        "vgabios": prefix / "share" / "bochs" / "vgabios-cirrus.bin-1.13.0",
    }


def patch_body() -> str:
    """The patch without its header: what a build depends on (comments above it do not)."""
    text = BOCHS_PATCH.read_text()
    start = text.find("\n--- ")
    return text[start + 1:] if start >= 0 else text


def bochs_stamp() -> str:
    """What the cached build must have been made from: tarball, patch, configure line."""
    h = hashlib.sha256()
    h.update(BOCHS_TARBALL_SHA256.encode())
    h.update(patch_body().encode())
    h.update(" ".join(BOCHS_CONFIGURE).encode())
    return h.hexdigest()[:16]


def bochs_missing(cache: Path) -> list[str]:
    """What of the Bochs build is missing or stale (empty: all there)."""
    missing = [f"{k} ({p})" for k, p in bochs_paths(cache).items() if not p.exists()]
    stamp = cache / "bochs" / "build-stamp"
    if not missing and (not stamp.exists() or stamp.read_text().strip() != bochs_stamp()):
        missing.append(f"a build of the current {BOCHS_PATCH.name} ({stamp} differs)")
    return missing


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_bochs(cache: Path) -> None:
    """Fetch Bochs 3.0's source with apt-get, apply the UINTR fixes, build it with UINTR and SMP."""
    src = cache / "src"
    src.mkdir(parents=True, exist_ok=True)
    tarball = src / BOCHS_TARBALL
    logs = cache / "logs"
    if not tarball.exists():
        log(f"fetching {BOCHS_TARBALL} with apt-get source (bochs/trixie)")
        r = subprocess.run(["apt-get", "source", "--download-only", "bochs/trixie"], cwd=src,
                           capture_output=True, text=True)
        if not tarball.exists():
            raise RuntimeError(f"apt-get source bochs/trixie did not give {BOCHS_TARBALL} "
                               f"({r.stderr.strip()[-300:]}); {BOCHS_APT_HINT}")
    digest = sha256(tarball)
    if digest != BOCHS_TARBALL_SHA256:
        raise RuntimeError(f"{tarball}: sha256 {digest}, expected {BOCHS_TARBALL_SHA256}")
    tree = src / "bochs-3.0"
    applied = tree / ".uintr_loop-patch"
    if (tree / "configure").exists() and (
            not applied.exists() or applied.read_text() != patch_body()):
        shutil.rmtree(tree)              # a tree patched with another version: start again
    if not (tree / "configure").exists():
        run(["tar", "xf", str(tarball)], cwd=src)
        run(["patch", "-p1", "--forward", "-i", str(BOCHS_PATCH)], cwd=tree, logfile=logs / "bochs-build.log")
        applied.write_text(patch_body())
    log("building Bochs 3.0 (about 6 minutes on two idle cores; log in " + str(logs / "bochs-build.log") + ")")
    t0 = time.monotonic()
    run(["./configure", f"--prefix={cache / 'bochs'}", *BOCHS_CONFIGURE], cwd=tree,
        logfile=logs / "bochs-build.log", nice=True)
    run(["make", f"-j{os.cpu_count() or 2}"], cwd=tree, logfile=logs / "bochs-build.log", nice=True)
    run(["make", "install"], cwd=tree, logfile=logs / "bochs-build.log")
    (cache / "bochs" / "build-stamp").write_text(bochs_stamp() + "\n")
    log(f"Bochs built in {time.monotonic() - t0:.0f} s")
    missing = bochs_missing(cache)
    if missing:
        raise RuntimeError("Bochs installed without " + ", ".join(missing))


def bochs_has_uintr_model(bochs: Path) -> bool:
    r = subprocess.run([str(bochs), "-help", "cpu"], capture_output=True, text=True, timeout=60)
    return "sapphire_rapids" in (r.stdout + r.stderr)


def write_bochsrc(path: Path, cache: Path, disk: Path, serial: Path, bochs_log: Path, cpus: int,
                  memory_mb: int, template: Path = HERE / "bochsrc.in") -> None:
    p = bochs_paths(cache)
    text = template.read_text()
    for key, value in {
        "@CPUS@": str(cpus), "@MEMORY_MB@": str(memory_mb), "@BIOS@": str(p["bios"]),
        "@VGABIOS@": str(p["vgabios"]), "@DISK@": str(disk), "@SERIAL@": str(serial), "@LOG@": str(bochs_log),
    }.items():
        text = text.replace(key, value)
    path.write_text(text)


def run_bochs(cache: Path, rundir: Path, timeout: float, nice: bool = False) -> tuple[int | None, float]:
    """Boot Bochs with rundir/bochsrc; returns (exit status or None on timeout, seconds)."""
    bochs = bochs_paths(cache)["bochs"]
    cmd = [str(bochs), "-q", "-f", str(rundir / "bochsrc")]
    if nice and shutil.which("nice"):
        cmd = ["nice", "-n", "10", *cmd]
    t0 = time.monotonic()
    with open(rundir / "bochs-console.txt", "wb") as out:
        proc = subprocess.Popen(cmd, cwd=rundir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGINT first: Bochs then closes its files (the serial log included).
            proc.send_signal(2)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            rc = None
    return rc, time.monotonic() - t0


# ---- level 1: the instructions, freestanding ----------------------------

CHECK_RE = re.compile(r"^CHECK (\S+) (PASS|FAIL) ?(.*)$")
SUMMARY_RE = re.compile(r"^SUMMARY passed=(\d+) failed=(\d+)")

LEVEL1_WHERE = ("executed on Bochs 3.0's emulated Sapphire Rapids (sapphire_rapids CPU model, 2 CPUs), "
                "no Linux: ring-0 test monitor + ring-3 test program")


# The two images: one per kernel ABI the backend speaks (the monitor answers both).
LEVEL1_IMAGES = {
    "1": ("uintr-test.img", "v6.0-branch ABI (syscalls 471..476)"),
    "1-rfc": ("uintr-test-rfc.img", "rfc-v1 ABI (syscalls 449..454)"),
}


def build_level1(cache: Path) -> Path:
    out = cache / "build" / "freestanding"
    run(["make", "-s", "-C", str(HERE / "freestanding"), f"O={out}", f"REPO={REPO}"],
        logfile=cache / "logs" / "freestanding-build.log")
    return out


def parse_level1(serial_text: str, level: str = "1") -> tuple[list[Check], tuple[int, int] | None, list[str]]:
    checks, summary, fatal = [], None, []
    for line in serial_text.splitlines():
        line = line.rstrip("\r")
        m = CHECK_RE.match(line)
        if m:
            checks.append(Check(level, m.group(1), m.group(2) == "PASS", m.group(3)))
            continue
        m = SUMMARY_RE.match(line)
        if m:
            summary = (int(m.group(1)), int(m.group(2)))
        elif line.startswith("FATAL"):
            fatal.append(line)
    return checks, summary, fatal


# Seconds a run waits for another run's hold on the cache (a kernel build holds it
# for many minutes); main() sets it from --lock-wait.
LOCK_WAIT = 4 * 3600.0


@contextlib.contextmanager
def cache_lock(cache: Path) -> Iterator[None]:
    """One build at a time per cache (two test sessions may run at once).

    Waits at most LOCK_WAIT seconds, then raises RuntimeError saying so: a run
    with a time limit (the test) fails naming the lock rather than being killed
    at its limit with nothing said.
    """
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as f:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"another hw-emu run held the cache lock ({cache / '.lock'}) "
                                       f"for over {LOCK_WAIT:.0f} s") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def level1(cache: Path, timeout: float, level: str = "1") -> LevelResult:
    image_name, abi = LEVEL1_IMAGES[level]
    res = LevelResult(level, "ran", f"{LEVEL1_WHERE}; the backend with the {abi}")
    try:
        with cache_lock(cache):
            image = build_level1(cache) / image_name
            rundir = cache / "run" / f"level{level}-{os.getpid()}"
            if rundir.exists():
                shutil.rmtree(rundir)
            rundir.mkdir(parents=True)
            disk = rundir / "uintr-test.img"
            shutil.copyfile(image, disk)
    except (RuntimeError, OSError) as e:
        res.state = "build failed"
        res.notes.append(str(e))
        return res
    serial = rundir / "serial.txt"
    write_bochsrc(rundir / "bochsrc", cache, disk, serial, rundir / "bochs.log", cpus=2, memory_mb=64)
    log(f"level {level}: booting the freestanding test ({abi}) in Bochs (run directory {rundir})")
    rc, res.seconds = run_bochs(cache, rundir, timeout)
    # The port 0xe9 copy (Bochs's console) is complete; Bochs does not flush
    # the serial port's file when the guest ends the simulation.
    console = rundir / "bochs-console.txt"
    text = console.read_text(errors="replace") if console.exists() else ""
    res.checks, summary, fatal = parse_level1(text, level)
    res.notes.extend(fatal)
    if rc is None:
        res.notes.append(f"Bochs did not finish within {timeout:.0f} s")
    if summary is None:
        res.state = "did not finish"
        tail = text.splitlines()[-5:]
        res.notes.append("no SUMMARY line from the guest; console tail: " + " | ".join(tail))
    elif summary != (sum(c.ok for c in res.checks), sum(not c.ok for c in res.checks)):
        res.state = "did not finish"
        res.notes.append(f"guest SUMMARY {summary} does not match the {len(res.checks)} CHECK lines")
    if fatal:
        res.state = "did not finish"
    if res.state == "ran":
        shutil.rmtree(rundir, ignore_errors=True)     # kept only when something went wrong
    else:
        res.notes.append(f"logs kept in {rundir}")
    return res


def level_not_built(level: str, why: str) -> LevelResult:
    return LevelResult(level, "not built", "did not run", notes=[why])


# ---- level 2: a UINTR kernel on linux-source-6.1 -------------------------

KERNEL_DIR = HERE / "kernel"
KERNEL_PATCH = KERNEL_DIR / "linux-6.1-uintr.patch"
KERNEL_CONFIG = KERNEL_DIR / "uintr.config"
KERNEL_BOCHSRC = KERNEL_DIR / "bochsrc.in"
LINUX_PACKAGE = "linux-source-6.1"
LINUX_VERSION = "6.1.192-3"        # the Debian version the patch was written against
LINUX_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")   # where the package puts it
# Debian packages the level-2 build uses (besides gcc and make).
LEVEL2_PACKAGES = [LINUX_PACKAGE, "bc", "bison", "flex", "libelf-dev", "lz4", "isolinux", "syslinux-common",
                   "xorriso"]
ISOLINUX_BIN = Path("/usr/lib/ISOLINUX/isolinux.bin")
LDLINUX_C32 = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")
KERNEL_CMDLINE = "console=ttyS0,115200 earlyprintk=serial,ttyS0,115200 nox2apic mitigations=off tsc=reliable no_timer_check lpj=100000 rdinit=/init clearcpuid=umip,fsrm"
LEVEL2_TIMEOUT = 600    # seconds of wall time for the kernel boot and the selftest (Bochs ran about 50 M instructions/s here)
LEVEL2_CPUS = 2
LEVEL2_WHERE = ("executed on Bochs 3.0's emulated Sapphire Rapids (sapphire_rapids CPU model, {cpus} CPUs, "
                "{online} online in the guest) under Debian's linux-source-6.1 ({version}) with this repository's "
                "UINTR patch; the selftest tests/hw_emu/kernel/uintr_selftest.c as /init")
CPUS_RE = re.compile(r"^CPUS online=(\d+)", re.M)
# Options the guests need: a .config that lost one of them is a failed build.
KERNEL_REQUIRED = ["CONFIG_SMP=y", "CONFIG_X86_USER_INTERRUPTS=y", "CONFIG_SERIAL_8250_CONSOLE=y",
                   "CONFIG_BLK_DEV_INITRD=y", "CONFIG_DEVTMPFS=y", "CONFIG_PROC_FS=y", "CONFIG_EPOLL=y",
                   "CONFIG_EVENTFD=y", "CONFIG_FUTEX=y", "CONFIG_X86_IOPL_IOPERM=y", "CONFIG_KERNEL_LZ4=y",
                   "CONFIG_MEMFD_CREATE=y"]


def text_body(path: Path) -> str:
    """A patch or fragment without its leading comment block (what a build depends on)."""
    text = path.read_text()
    start = text.find("\n--- ") if path.suffix == ".patch" else 0
    return text[start + 1:] if start > 0 else text


def linux_installed_version() -> str | None:
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", LINUX_PACKAGE], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


def kernel_stamp(version: str) -> str:
    h = hashlib.sha256()
    for part in (version, text_body(KERNEL_PATCH), KERNEL_CONFIG.read_text()):
        h.update(part.encode())
    return h.hexdigest()[:16]


def kernel_paths(cache: Path) -> dict[str, Path]:
    root = cache / "linux"
    return {"root": root, "tree": root / "linux-source-6.1", "build": root / "build",
            "bzImage": root / "bzImage", "stamp": root / "build-stamp"}


def kernel_missing(cache: Path) -> list[str]:
    """What of the level-2 kernel is missing or stale (empty: all there)."""
    p = kernel_paths(cache)
    if not KERNEL_PATCH.exists():
        return [f"the patch {KERNEL_PATCH.name} (not in this checkout)"]
    if not p["bzImage"].exists():
        return [f"bzImage ({p['bzImage']})"]
    version = linux_installed_version() or LINUX_VERSION
    if not p["stamp"].exists() or p["stamp"].read_text().strip() != kernel_stamp(version):
        return [f"a build of the current {KERNEL_PATCH.name} and {KERNEL_CONFIG.name} ({p['stamp']} differs)"]
    return []


def ensure_packages(packages: list[str]) -> None:
    """Install missing Debian packages with apt-get (as root), or say which are missing."""
    missing = [pkg for pkg in packages
               if subprocess.run(["dpkg-query", "-W", "-f", "${Status}", pkg], capture_output=True,
                                 text=True).stdout.strip() != "install ok installed"]
    if not missing:
        return
    if os.geteuid() != 0:
        raise RuntimeError("missing Debian packages: " + " ".join(missing) + " (apt-get install them)")
    log("installing Debian packages: " + " ".join(missing))
    r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError(f"apt-get install {' '.join(missing)} failed: {r.stderr.strip()[-300:]}")


def build_kernel(cache: Path) -> None:
    """Unpack Debian's linux-source-6.1, apply the UINTR patch, configure, build bzImage."""
    ensure_packages(LEVEL2_PACKAGES)
    version = linux_installed_version()
    if version != LINUX_VERSION:
        log(f"note: {LINUX_PACKAGE} is {version} here; the patch was written against {LINUX_VERSION}")
    p = kernel_paths(cache)
    logs = cache / "logs"
    applied = p["tree"] / ".uintr_loop-patch"
    if p["tree"].exists() and (not applied.exists() or applied.read_text() != f"{version}\n{text_body(KERNEL_PATCH)}"):
        shutil.rmtree(p["tree"])
        shutil.rmtree(p["build"], ignore_errors=True)
    if not p["tree"].exists():
        p["root"].mkdir(parents=True, exist_ok=True)
        log(f"unpacking {LINUX_TARBALL.name} ({version})")
        run(["tar", "xf", str(LINUX_TARBALL)], cwd=p["root"], logfile=logs / "kernel-build.log")
        run(["patch", "-p1", "--forward", "-i", str(KERNEL_PATCH)], cwd=p["tree"], logfile=logs / "kernel-build.log")
        applied.write_text(f"{version}\n{text_body(KERNEL_PATCH)}")
    p["build"].mkdir(parents=True, exist_ok=True)
    log("building the level-2 kernel (a few minutes on two idle cores; log in " + str(logs / "kernel-build.log") + ")")
    t0 = time.monotonic()
    run(["make", "-C", str(p["tree"]), f"O={p['build']}", f"KCONFIG_ALLCONFIG={KERNEL_CONFIG}", "allnoconfig"],
        logfile=logs / "kernel-build.log", nice=True)
    config = (p["build"] / ".config").read_text().splitlines()
    lost = [opt for opt in KERNEL_REQUIRED if opt not in config]
    if lost:
        raise RuntimeError("the kernel configuration lost " + ", ".join(lost))
    run(["make", "-C", str(p["tree"]), f"O={p['build']}", f"-j{os.cpu_count() or 2}", "bzImage"],
        logfile=logs / "kernel-build.log", nice=True)
    shutil.copyfile(p["build"] / "arch" / "x86" / "boot" / "bzImage", p["bzImage"])
    p["stamp"].write_text(kernel_stamp(version or LINUX_VERSION) + "\n")
    log(f"kernel built in {time.monotonic() - t0:.0f} s")


def build_selftest(cache: Path) -> Path:
    """The static selftest (/init of the initramfs)."""
    out = cache / "build" / "kernel"
    out.mkdir(parents=True, exist_ok=True)
    logfile = cache / "logs" / "selftest-build.log"
    run(["gcc", "-O2", "-Wall", "-muintr", "-mgeneral-regs-only", "-c", str(KERNEL_DIR / "handler.c"),
         "-o", str(out / "handler.o")], logfile=logfile)
    run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-muintr", f"-I{KERNEL_DIR}",
         "-o", str(out / "uintr_selftest"), str(KERNEL_DIR / "uintr_selftest.c"), str(out / "handler.o"),
         "-lpthread"], logfile=logfile)
    return out / "uintr_selftest"


def cpio_newc(entries: list[tuple[str, int, bytes, int]]) -> bytes:
    """A 'newc' cpio archive: (name, mode, data, rdev) per entry, then the trailer."""
    out = bytearray()
    for ino, (name, mode, data, rdev) in enumerate([*entries, ("TRAILER!!!", 0, b"", 0)], start=1):
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev >> 8, rdev & 0xff, len(name) + 1, 0]
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def madt(cpus: int) -> bytes:
    """An ACPI MADT ("APIC") for `cpus` CPUs, to replace the one SeaBIOS builds.

    SeaBIOS 1.13 under Bochs lists only the CPUs it counted at start-up, and
    it counts one: it takes the number to wait for from CMOS 0x5f, which
    Bochs leaves 0, and with 0x5f = 1 its start-up never ends (the BSP drops
    and retakes its start-up lock inside one Bochs trace, so the AP never
    gets it). Linux then brings up only CPU 0. This table says what SeaBIOS's
    would say for `cpus` CPUs: local APIC IDs 0..cpus-1, all enabled, the I/O
    APIC (ID 0 at 0xfec00000, GSI base 0), PCI IRQs 5, 9, 10, 11 active high
    and level triggered, LINT1 as NMI on every CPU. Same signature, OEM ID
    and OEM table ID, a higher OEM revision: Linux's ACPI table upgrade
    (CONFIG_ACPI_TABLE_UPGRADE, from kernel/firmware/acpi/ in the initramfs)
    takes it instead.
    """
    import struct
    body = struct.pack("<II", 0xFEE00000, 1)                  # local APIC address, PCAT_COMPAT
    for i in range(cpus):
        body += struct.pack("<BBBBI", 0, 8, i, i, 1)          # processor local APIC, enabled
    body += struct.pack("<BBBBII", 1, 12, 0, 0, 0xFEC00000, 0)  # I/O APIC
    for irq in (5, 9, 10, 11):
        body += struct.pack("<BBBBIH", 2, 10, 0, irq, irq, 0xD)  # interrupt source override
    body += struct.pack("<BBBHB", 4, 6, 0xFF, 0, 1)          # local APIC NMI, all CPUs, LINT1
    length = 36 + len(body)
    header = struct.pack("<4sIBB6s8sI4sI", b"APIC", length, 1, 0, b"BOCHS ", b"BXPCAPIC", 2, b"BXPC", 1)
    table = bytearray(header + body)
    table[9] = (-sum(table)) & 0xFF
    return bytes(table)


def build_iso(cache: Path, selftest: Path, rundir: Path, cpus: int = LEVEL2_CPUS,
              extra: tuple[tuple[str, int, bytes, int], ...] = ()) -> Path:
    """An isolinux CD image with the kernel and an initramfs whose /init is the selftest.

    The initramfs also holds kernel/firmware/acpi/apic.aml, a MADT that lists
    all `cpus` CPUs (see madt()), and the `extra` cpio entries.
    """
    iso_root = rundir / "iso"
    (iso_root / "isolinux").mkdir(parents=True)
    initrd = cpio_newc([
        ("kernel", 0o040755, b"", 0), ("kernel/firmware", 0o040755, b"", 0),
        ("kernel/firmware/acpi", 0o040755, b"", 0), ("kernel/firmware/acpi/apic.aml", 0o100644, madt(cpus), 0),
        ("dev", 0o040755, b"", 0), ("dev/console", 0o020600, b"", (5 << 8) | 1),
        ("proc", 0o040555, b"", 0), ("init", 0o100755, selftest.read_bytes(), 0), *extra,
    ])
    (iso_root / "initrd.img").write_bytes(initrd)
    shutil.copyfile(kernel_paths(cache)["bzImage"], iso_root / "bzImage")
    shutil.copyfile(ISOLINUX_BIN, iso_root / "isolinux" / "isolinux.bin")
    shutil.copyfile(LDLINUX_C32, iso_root / "isolinux" / "ldlinux.c32")
    (iso_root / "isolinux" / "isolinux.cfg").write_text(
        f"DEFAULT uintr\nPROMPT 0\nTIMEOUT 0\nLABEL uintr\n  KERNEL /bzImage\n"
        f"  APPEND initrd=/initrd.img {KERNEL_CMDLINE}\n")
    iso = rundir / "uintr-kernel.iso"
    run(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(iso), "-b", "isolinux/isolinux.bin",
         "-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", str(iso_root)],
        logfile=cache / "logs" / "iso-build.log")
    return iso


# The backend as setup.py compiles it (plus -static linking into the harness).
BACKEND_CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wno-unused-function", "-fPIC", "-muintr", "-mgeneral-regs-only"]
LEVEL3_WHERE = ("executed on Bochs 3.0's emulated Sapphire Rapids (sapphire_rapids CPU model, {cpus} CPUs, "
                "{online} online in the guest) under the level-2 kernel (linux-source-6.1 {version} with this "
                "repository's UINTR patch); the project's backend cython_src/hw/uintr_hw.c (v6.0-branch ABI) in "
                "tests/hw_emu/kernel/backend_harness.c as /init")


def build_harness(cache: Path) -> Path:
    """Level 3's /init: the backend, compiled with the project's flags, in a static harness."""
    out = cache / "build" / "kernel"
    out.mkdir(parents=True, exist_ok=True)
    logfile = cache / "logs" / "harness-build.log"
    includes = f"-I{REPO / 'cython_src' / 'includes'}"
    run(["gcc", *BACKEND_CFLAGS, includes, "-c", str(REPO / "cython_src" / "hw" / "uintr_hw.c"),
         "-o", str(out / "uintr_hw.o")], logfile=logfile)
    run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-muintr", includes,
         "-o", str(out / "backend_harness"), str(KERNEL_DIR / "backend_harness.c"), str(out / "uintr_hw.o"),
         "-lpthread"], logfile=logfile)
    return out / "backend_harness"


InitrdEntries = tuple[tuple[str, int, bytes, int], ...]


def level2(cache: Path, timeout: float, build: bool, level: str = "2") -> LevelResult:
    """Boot the level-2 kernel with the selftest (level 2) or the backend harness (level 3) as /init."""
    make_init = build_selftest if level == "2" else build_harness
    res, _ = kernel_level(cache, level, LEVEL2_WHERE if level == "2" else LEVEL3_WHERE, timeout, build,
                          lambda c: (make_init(c), ()))
    return res


def kernel_level(cache: Path, level: str, where: str, timeout: float, build: bool,
                 make_init: Callable[[Path], tuple[Path, InitrdEntries]],
                 memory_mb: int = 128) -> tuple[LevelResult, str | None]:
    """A level under the level-2 kernel: build the kernel if it is missing (and build is true), then
    /init and its initramfs entries (make_init), the CD image; boot it with memory_mb of guest memory
    and parse what /init printed.

    Returns the result and the console text (None when it did not boot).
    """
    version = linux_installed_version() or LINUX_VERSION
    res = LevelResult(level, "ran", where.format(cpus=LEVEL2_CPUS, online="?", version=version))
    try:
        with cache_lock(cache):
            missing = kernel_missing(cache)
            if missing and not build:
                return level_not_built(level, "the level-2 kernel is not in the cache (missing "
                                       + ", ".join(missing) + "); `make hw-emu` builds it"), None
            if missing:
                build_kernel(cache)
            init, entries = make_init(cache)
            rundir = cache / "run" / f"level{level}-{os.getpid()}"
            if rundir.exists():
                shutil.rmtree(rundir)
            rundir.mkdir(parents=True)
            iso = build_iso(cache, init, rundir, extra=entries)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        res.state = "build failed"
        res.notes.append(str(e))
        return res, None
    return res, boot_kernel(cache, res, rundir, iso, init, timeout, where, version, memory_mb)


def boot_kernel(cache: Path, res: LevelResult, rundir: Path, iso: Path, init: Path, timeout: float, where: str,
                version: str, memory_mb: int = 128) -> str:
    """Boot the level-2 kernel's CD image in Bochs and parse what /init printed into res.

    Sets the checks, the seconds in Bochs, where it ran (with the CPUs the guest had online) and the
    state; removes the run directory when every check passed, keeps it otherwise. Returns the console
    text (port 0xe9).
    """
    serial = rundir / "serial.txt"
    write_bochsrc(rundir / "bochsrc", cache, iso, serial, rundir / "bochs.log", cpus=LEVEL2_CPUS, memory_mb=memory_mb,
                  template=KERNEL_BOCHSRC)
    log(f"level {res.level}: booting the UINTR kernel in Bochs, {init.name} as /init (run directory {rundir})")
    rc, res.seconds = run_bochs(cache, rundir, timeout, nice=True)
    console = rundir / "bochs-console.txt"
    text = console.read_text(errors="replace") if console.exists() else ""
    res.checks, summary, fatal = parse_level1(text, res.level)
    res.notes.extend(fatal)
    m = CPUS_RE.search(text.replace("\r", ""))
    res.where = where.format(cpus=LEVEL2_CPUS, online=m.group(1) if m else "?", version=version)
    if rc is None:
        res.notes.append(f"Bochs did not finish within {timeout:.0f} s")
    if summary is None:
        res.state = "did not finish"
        kernel_tail = serial.read_text(errors="replace").splitlines()[-6:] if serial.exists() else []
        res.notes.append(f"no SUMMARY line from {init.name}; serial tail: " + " | ".join(kernel_tail))
    elif summary != (sum(c.ok for c in res.checks), sum(not c.ok for c in res.checks)):
        res.state = "did not finish"
        res.notes.append(f"{init.name}: SUMMARY {summary} does not match the {len(res.checks)} CHECK lines")
    if not res.failed:
        shutil.rmtree(rundir, ignore_errors=True)
    else:
        res.notes.append(f"logs kept in {rundir}")
    return text


# ---- level 2-intel: Intel's own selftests under the level-2 kernel -------

INTEL_SUBDIR = "intel-selftests"
INTEL_TESTS_DIR = Path("tools") / "testing" / "selftests" / "uintr"
# The headers uintr_common.h includes, by its relative paths from the tests' folder.
INTEL_HEADERS = [INTEL_TESTS_DIR / "uintr_common.h", Path("tools") / "testing" / "selftests" / "kselftest.h",
                 Path("arch") / "x86" / "include" / "uapi" / "asm" / "uintr.h"]
# (program, seconds on the guest's clock before the runner kills it, arguments):
# the Makefile's TEST_GEN_PROGS in its order, then its TEST_GEN_PROGS_EXTENDED
# context_switch_ipc with its defaults (2 pairs per CPU, 100000 round trips each).
# Each took 0.11 s of guest time or less here; the guest's clock runs far slower
# than the wall clock (10 s of it took over 13 minutes), so these limits are
# for tests that hang, not for slow ones.
INTEL_TESTS: list[tuple[str, int, list[str]]] = [
    ("ipc_base", 30, []), ("syscall_handler", 10, []), ("syscall_vector", 10, []), ("syscall_sender", 10, []),
    ("syscall_flags", 10, []), ("senduipi_instr", 10, []), ("senduipi_self_ipi", 10, []),
    ("syscall_alt_stack", 10, []), ("syscall_ipi_fd", 10, []), ("syscall_blocking", 20, []),
    ("context_switch_ipc", 20, []),
]
# The Makefile's flags (CFLAGS += -g -muintr -mgeneral-regs-only, LDLIBS += -lpthread), static.
INTEL_CFLAGS = ["-static", "-g", "-muintr", "-mgeneral-regs-only"]
LEVEL2I_TIMEOUT = 1800
LEVEL2I_WHERE = ("executed on Bochs 3.0's emulated Sapphire Rapids (sapphire_rapids CPU model, {cpus} CPUs, "
                 "{online} online in the guest) under the level-2 kernel (linux-source-6.1 {version} with this "
                 "repository's UINTR patch); Intel's selftests from the cache, run by tests/hw_emu/kernel/"
                 "intel_runner.c as /init")


def intel_dir(cache: Path) -> Path:
    """Where level 2-intel looks for Intel's selftest sources: <cache>/intel-selftests.

    It mirrors the branch's paths (as `git archive` of a checkout gives them):
    tools/testing/selftests/uintr/ (uintr_common.h and the tests),
    tools/testing/selftests/kselftest.h, arch/x86/include/uapi/asm/uintr.h.
    """
    return cache / INTEL_SUBDIR


def intel_missing(cache: Path) -> list[str]:
    root = intel_dir(cache)
    if not root.is_dir():
        return [str(root)]
    wanted = INTEL_HEADERS + [INTEL_TESTS_DIR / f"{name}.c" for name, _, _ in INTEL_TESTS]
    return [str(root / rel) for rel in wanted if not (root / rel).exists()]


def build_intel(cache: Path) -> tuple[Path, InitrdEntries]:
    """The runner (/init) and the initramfs entries of the tests: /intel/<name>, /intel/tests."""
    out = cache / "build" / "intel"
    out.mkdir(parents=True, exist_ok=True)
    logfile = cache / "logs" / "intel-build.log"
    src = intel_dir(cache) / INTEL_TESTS_DIR
    run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-unused-function",
         f"-I{KERNEL_DIR}", "-o", str(out / "intel_runner"), str(KERNEL_DIR / "intel_runner.c")], logfile=logfile)
    entries = [("intel", 0o040755, b"", 0), ("sys", 0o040555, b"", 0)]
    lines = []
    for name, seconds, args in INTEL_TESTS:
        run(["gcc", *INTEL_CFLAGS, "-o", str(out / name), str(src / f"{name}.c"), "-lpthread"], logfile=logfile)
        entries.append((f"intel/{name}", 0o100755, (out / name).read_bytes(), 0))
        lines.append(" ".join([name, str(seconds), *args]))
    entries.append(("intel/tests", 0o100644, ("\n".join(lines) + "\n").encode(), 0))
    return out / "intel_runner", tuple(entries)


def level2_intel(cache: Path, timeout: float, build: bool) -> LevelResult:
    level = "2-intel"
    missing = intel_missing(cache)
    if missing:
        return level_not_built(level, f"Intel's selftest sources are not in {intel_dir(cache)} (missing "
                               + ", ".join(missing) + "); docs/design/hardware-emulated.md says how to put them there")
    res, text = kernel_level(cache, level, LEVEL2I_WHERE, timeout, build, build_intel)
    if text is not None:
        res.notes.append("the tests' own output: " + write_transcript(cache, "intel-selftests.txt", text, "intel| "))
    return res


def write_transcript(cache: Path, name: str, console: str, prefix: str) -> str:
    """Keep what /init printed (its prefix's lines and the checks) in <cache>/logs/name; returns the path."""
    transcript = cache / "logs" / name
    transcript.parent.mkdir(parents=True, exist_ok=True)
    transcript.write_text("".join(line + "\n" for line in console.replace("\r", "").splitlines()
                                  if line.startswith((prefix, "CHECK ", "CPUS ", "SUMMARY "))))
    return str(transcript)


# ---- level 4: CPython and the project under the level-2 kernel ------------

LEVEL4_TIMEOUT = 900     # seconds of wall time for the boot, Python's build steps excluded (41 s in Bochs here)
LEVEL4_WHERE = ("executed on Bochs 3.0's emulated Sapphire Rapids (sapphire_rapids CPU model, {cpus} CPUs, "
                "{online} online in the guest, {memory} MB) under the level-2 kernel (linux-source-6.1 {version} with "
                "this repository's UINTR patch); CPython {python} from the project's venv with the uintr_loop package "
                "it has, tests/hw_emu/kernel/python_init.c as /init")


def level4(cache: Path, timeout: float, build: bool) -> LevelResult:
    level = "4"
    missing = python_level.python_missing()
    if missing:
        return level_not_built(level, "the project's venv lacks what level 4 copies into the guest: "
                               + "; ".join(missing))
    where = LEVEL4_WHERE.replace("{python}", python_level.python_version()).replace(
        "{memory}", str(python_level.PYTHON_MEMORY_MB))
    res, text = kernel_level(cache, level, where, timeout, build, python_level.build_python,
                             memory_mb=python_level.PYTHON_MEMORY_MB)
    if text is not None:
        res.notes.append("what Python printed in the guest: "
                         + write_transcript(cache, "python-guest.txt", text, "py| "))
    return res


# ---- the table ----------------------------------------------------------

def print_table(results: list[LevelResult]) -> None:
    rows = [("level", "check", "result", "detail")]
    for r in results:
        for c in r.checks:
            rows.append((r.level, c.name, "PASS" if c.ok else "FAIL", c.detail))
        if not r.checks or r.state != "ran":
            rows.append((r.level, "(level)", r.state.upper(), "; ".join(r.notes)))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    for i, (level, name, result, detail) in enumerate(rows):
        print(f"{level:<{w0}}  {name:<{w1}}  {result:<{w2}}  {detail}")
        if i == 0:
            print(f"{'-' * w0}  {'-' * w1}  {'-' * w2}  {'-' * 6}")
    print()
    for r in results:
        line = f"level {r.level}: {r.state}"
        if r.state == "ran":
            line += (f", {sum(c.ok for c in r.checks)} passed, {sum(not c.ok for c in r.checks)} failed, "
                     f"{r.seconds:.0f} s in Bochs; {r.where}")
        else:
            line += "; " + "; ".join(r.notes)
        print(line)


def probe(cache: Path) -> dict[str, object]:
    """What exists, without building anything (tests/test_hardware_emulated.py asks this)."""
    missing = bochs_missing(cache)
    kmissing = kernel_missing(cache)
    imissing = intel_missing(cache)
    pmissing = python_level.python_missing()
    kernel_level = "needs Bochs" if missing else "needs the kernel build" if kmissing else "buildable"
    return {"cache": str(cache), "bochs_missing": missing, "kernel_missing": kmissing,
            "intel_selftests_missing": imissing, "python_missing": pmissing,
            "levels": {"1": "buildable" if not missing else "needs Bochs",
                       "1-rfc": "buildable" if not missing else "needs Bochs",
                       "2": kernel_level, "3": kernel_level,
                       "2-intel": f"needs Intel's selftest sources in {intel_dir(cache)}" if imissing
                       else kernel_level,
                       "4": "needs " + "; ".join(pmissing) if pmissing else kernel_level}}


def main(argv: list[str] | None = None) -> int:
    global LOCK_WAIT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-build-bochs", action="store_true",
                    help="do not fetch and build Bochs; fail if it is not in the cache")
    ap.add_argument("--probe", action="store_true", help="print what exists as JSON and exit")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    ap.add_argument("--no-build-kernel", action="store_true",
                    help="do not build the level-2 kernel; report level 2 as not built if it is not in the cache")
    ap.add_argument("--levels", default="1,1-rfc,2,3,2-intel,4",
                    help="comma-separated levels to run (default: all that exist); the others are reported as skipped")
    ap.add_argument("--timeout", type=float, default=LEVEL1_TIMEOUT, help="seconds per level-1 Bochs run")
    ap.add_argument("--timeout-kernel", type=float, default=LEVEL2_TIMEOUT, help="seconds for the level-2 Bochs run")
    ap.add_argument("--timeout-intel", type=float, default=LEVEL2I_TIMEOUT,
                    help="seconds for the level 2-intel Bochs run")
    ap.add_argument("--timeout-python", type=float, default=LEVEL4_TIMEOUT,
                    help="seconds for the level-4 Bochs run")
    ap.add_argument("--lock-wait", type=float, default=LOCK_WAIT,
                    help="seconds to wait for another run's hold on the cache before failing")
    args = ap.parse_args(argv)
    LOCK_WAIT = args.lock_wait
    cache = cache_dir()
    if args.probe:
        print(json.dumps(probe(cache), indent=2))
        return 0
    t0 = time.monotonic()
    results = Results(Path(args.json) if args.json else None)
    missing = bochs_missing(cache)
    bochs_error = None
    if missing and not args.no_build_bochs:
        try:
            with cache_lock(cache):
                build_bochs(cache)
        except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
            bochs_error = str(e)
    elif missing:
        bochs_error = "Bochs not in the cache: missing " + ", ".join(missing)
    if bochs_error is None and not bochs_has_uintr_model(bochs_paths(cache)["bochs"]):
        bochs_error = "the cached Bochs does not list the sapphire_rapids CPU model (built without UINTR?)"
    wanted = {level.strip() for level in args.levels.split(",") if level.strip()}
    if bochs_error:
        results.append(LevelResult("1", "build failed", "did not run", notes=[bochs_error]))
    else:
        for level in LEVEL1_IMAGES:
            if level in wanted:
                results.append(level1(cache, args.timeout, level))
            else:
                results.append(LevelResult(level, "skipped", "did not run", notes=["not asked for (--levels)"]))
    build = not args.no_build_kernel
    kernel_levels: list[tuple[str, Callable[[], LevelResult]]] = [
        ("2", lambda: level2(cache, args.timeout_kernel, build)),
        ("3", lambda: level2(cache, args.timeout_kernel, build, level="3")),
        ("2-intel", lambda: level2_intel(cache, args.timeout_intel, build)),
        ("4", lambda: level4(cache, args.timeout_python, build)),
    ]
    for level, run_level in kernel_levels:
        if level not in wanted:
            results.append(LevelResult(level, "skipped", "did not run", notes=["not asked for (--levels)"]))
        elif bochs_error:
            results.append(LevelResult(level, "build failed", "did not run", notes=["needs Bochs: " + bochs_error]))
        else:
            results.append(run_level())
    print_table(results)
    print(f"\nhw-emu: {time.monotonic() - t0:.0f} s in all; cache {cache}")
    return 1 if any(r.failed for r in results) else 0


class Results(list[LevelResult]):
    """The levels' results so far, written out (--json) after every level.

    A caller that stops this run at its own time limit still reads which
    levels finished, how long each took and what they found.
    """

    def __init__(self, path: Path | None) -> None:
        super().__init__()
        self.path = path

    def append(self, r: LevelResult) -> None:
        super().append(r)
        if r.state != "skipped":
            log(f"level {r.level}: {r.state}, {sum(c.ok for c in r.checks)} passed, "
                f"{sum(not c.ok for c in r.checks)} failed, {r.seconds:.1f} s in Bochs")
        if self.path is not None:
            tmp = self.path.with_suffix(".partial")
            tmp.write_text(json.dumps([asdict(x) | {"failed": x.failed} for x in self], indent=2))
            tmp.replace(self.path)


if __name__ == "__main__":
    sys.exit(main())
