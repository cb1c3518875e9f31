"""Run the core under valgrind memcheck and read what it reports.

Two runs (``make valgrind`` runs both and prints the summaries; the tests in
tests/test_memcheck.py run them as part of ``make test``):

* ``harness``: tests/valgrind/core_harness.c, the core's C headers alone with
  real threads, fds and a forked owner process. Everything in it is ours, so
  it must end with no error at all, nothing definitely or indirectly lost,
  and no fd left open but the liveness watcher's epoll fd (liveness.h: one per
  process, by design, for the process's lifetime).
* ``python``: tests/valgrind/python_workload.py, the compiled extension under
  the interpreter (PYTHONMALLOC=malloc, so memcheck sees every Python
  allocation). tests/valgrind/python.supp suppresses CPython's own known
  reports and nothing else; any error or definite leak with a frame in
  ``_core``, ``_native`` or our headers fails. Here (``make valgrind``) so
  does any other report not suppressed: a new one is to be read, then fixed
  or suppressed with a reason. The test in ``make test`` runs without the
  suppressions and fails on any report with a frame of ours anywhere in its
  stack, whatever the interpreter itself reports on this or another version.

Valgrind 3.24+ also reports the use of closed fds. Two of its reports are
about valgrind, not us, and are suppressed by name only where they apply:
the harness's deliberate use of a closed fd (tests/valgrind/
harness_fd_misuse.supp, valgrind 3.24+), and the owner pidfd made by
getsockopt(SO_PEERPIDFD), which some valgrind versions do not record (seen:
3.27.1), so that its uses read as "closed already"
(tests/valgrind/peer_pidfd.supp, only where tests/valgrind/peer_pidfd_probe.c
shows that gap under this valgrind).

Command line: ``python tests/_memcheck.py [harness] [python]`` (both by
default); exit status 1 if a run has a problem, 2 if valgrind is missing.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
VALGRIND_DIR = HERE / "valgrind"
HARNESS_SOURCE = VALGRIND_DIR / "core_harness.c"
PYTHON_WORKLOAD = VALGRIND_DIR / "python_workload.py"
PYTHON_SUPPRESSIONS = VALGRIND_DIR / "python.supp"
PEER_PIDFD_PROBE = VALGRIND_DIR / "peer_pidfd_probe.c"
PEER_PIDFD_SUPPRESSIONS = VALGRIND_DIR / "peer_pidfd.supp"
HARNESS_FD_SUPPRESSIONS = VALGRIND_DIR / "harness_fd_misuse.supp"
INCLUDES = REPO_ROOT / "cython_src" / "includes"

MEMCHECK_ARGS = [
    "--tool=memcheck",
    "--leak-check=full",
    "--show-leak-kinds=definite,indirect",
    "--errors-for-leak-kinds=definite,indirect",
    "--track-fds=yes",
    # the harness forks an owner process: its report would repeat ours
    "--child-silent-after-fork=yes",
]
# Valgrind's exit status when it found errors, on a valgrind older than 3.24.
# From 3.24 every fd open at exit counts as an error too, also in a forked
# child that _exit()s with what it inherited open: with --error-exitcode that
# status would replace the child's own, which the harness checks. There the
# program keeps its status and the log alone says what was found.
ERROR_EXITCODE = 99

# The only fd allowed to outlive its users: liveness.h's watcher epoll set.
ALLOWED_FD_CREATORS = ("uintr_watch_ensure",)

# A frame of ours: the extension modules, their generated C, our headers.
_OURS = re.compile(
    r"uintr_loop/_(core|native|hardware\w*)\.cpython"
    r"|\b_(core|native)\.c:"
    r"|cython_src/"
    r"|\b(upid|send|notify|memfd|vectorfd|liveness|busypoll|preempt|threads|stamp|fdkind"
    r"|clock|cpu|uintr_hw|uvapi)\.h:"
    r"|core_harness\.c:"
    r"|\(in [^)]*uintr_loop/"
)
# A loss record allocated while a module of ours was being imported (its
# exec function is on the stack): once per process, and kept to the end by the
# interpreter, not by us. CPython 3.13 no longer frees such objects (interned,
# immortal strings among them) at exit, so memcheck reports them as definitely
# lost there (seen: the capsule names of __Pyx_ExportFunction). What is
# allocated per post, per loop or per receiver never has this frame.
_IMPORT_TIME = re.compile(r"__pyx_pymod_exec_")
_LINE = re.compile(r"^==(\d+)== ?(.*)$")


@dataclasses.dataclass
class Report:
    """What one memcheck run said about its main process."""

    errors: int                 # ERROR SUMMARY, leaks of the kinds made errors included
    definitely_lost: int        # bytes
    indirectly_lost: int        # bytes
    open_fds: int               # FILE DESCRIPTORS: N open at exit (std included)
    std_fds: int
    error_blocks: list[str]     # each unsuppressed error, with its stack
    leak_blocks: list[str]      # each definite or indirect loss record
    fd_blocks: list[str]        # each fd open at exit, with where it was opened
    returncode: int
    log: str

    def created_fds(self) -> list[str]:
        """Fds opened during the run and still open at exit (not inherited)."""
        return [b for b in self.fd_blocks if "<inherited from parent>" not in b]

    def problems(self, only_ours: bool = False) -> list[str]:
        """Everything that makes the run fail, as readable strings.

        ``only_ours``: only reports with a frame of ours (errors, leaks, fds
        opened by our code); what the interpreter itself reports on another
        Python version is then left to ``make valgrind``, which is strict.
        """
        out = []
        for block in self.error_blocks:
            if _OURS.search(block):
                out.append("error in our code:\n" + block)
            elif not only_ours:
                out.append("error (not suppressed; read it, then fix or suppress):\n" + block)
        for block in self.leak_blocks:
            if _OURS.search(block) and not _IMPORT_TIME.search(block):
                out.append("leak in our code:\n" + block)
            elif not only_ours:
                out.append("leak:\n" + block)
        if not only_ours and (self.definitely_lost or self.indirectly_lost):
            out.append(f"lost: {self.definitely_lost} bytes definitely, "
                       f"{self.indirectly_lost} indirectly")
        for block in self.created_fds():
            if any(name in block for name in ALLOWED_FD_CREATORS):
                continue
            if _OURS.search(block) or not only_ours:
                out.append("fd left open:\n" + block)
        if self.errors and not only_ours:
            out.append(f"ERROR SUMMARY: {self.errors} errors")
        return out

    def summary(self) -> str:
        return (f"ERROR SUMMARY: {self.errors} errors; definitely lost: "
                f"{self.definitely_lost} bytes; indirectly lost: {self.indirectly_lost} "
                f"bytes; FILE DESCRIPTORS: {self.open_fds} open ({self.std_fds} std) at exit, "
                f"{len(self.created_fds())} opened by the run "
                f"({', '.join(_fd_names(self.created_fds())) or 'none'})")


def _fd_names(blocks: list[str]) -> list[str]:
    names = []
    for block in blocks:
        creator = next((n for n in ALLOWED_FD_CREATORS if n in block), None)
        names.append(f"{block.splitlines()[0]} from {creator}" if creator else block.splitlines()[0])
    return names


def _bytes(pattern: str, text: str) -> int:
    m = re.search(pattern + r":\s+([\d,]+) bytes", text)
    return int(m.group(1).replace(",", "")) if m else 0


def parse(log: str, returncode: int = 0, fds_are_errors: bool = False) -> Report:
    """Read a memcheck log (``--log-file``); only the first process's lines.

    ``fds_are_errors``: the log is from valgrind 3.24+, whose ERROR SUMMARY
    counts each fd open at exit; those are read as ``fd_blocks`` and judged
    there (the liveness watcher's is allowed), so ``errors`` leaves them out.
    """
    main_pid = None
    lines = []
    for raw in log.splitlines():
        m = _LINE.match(raw)
        if not m:
            continue
        if main_pid is None:
            main_pid = m.group(1)
        if m.group(1) == main_pid:
            lines.append(m.group(2))
    text = "\n".join(lines)
    # blocks are separated by blank lines, except that the first open fd
    # follows the FILE DESCRIPTORS line directly
    text_split = re.sub(r"^(Open .*?\d+)", r"\n\1", text, flags=re.M)
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", text_split) if p.strip()]
    errors_, leaks, fds = [], [], []
    for p in paragraphs:
        first = p.splitlines()[0]
        if re.match(r"Open .*?\d+", first):
            fds.append(p)
        elif re.search(r"are (definitely|indirectly) lost", first):
            leaks.append(p)
        elif "are possibly lost" in first or "still reachable" in first:
            continue
        elif re.search(r"^\s+at 0x", p, re.M) and not first.startswith(
                ("HEAP SUMMARY", "LEAK SUMMARY", "FILE DESCRIPTORS")):
            errors_.append(p)
    m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    fd_m = re.search(r"FILE DESCRIPTORS: (\d+) open \((\d+) std\) at exit", text)
    if m is None:
        raise ValueError("no ERROR SUMMARY in the memcheck log (did the run finish?):\n"
                         + log[-3000:])
    open_at_exit = sum("<inherited from parent>" not in b for b in fds) if fds_are_errors else 0
    return Report(
        errors=int(m.group(1)) - open_at_exit,
        definitely_lost=_bytes("definitely lost", text),
        indirectly_lost=_bytes("indirectly lost", text),
        open_fds=int(fd_m.group(1)) if fd_m else -1,
        std_fds=int(fd_m.group(2)) if fd_m else -1,
        error_blocks=errors_,
        leak_blocks=leaks,
        fd_blocks=fds,
        returncode=returncode,
        log=log,
    )


def valgrind() -> str | None:
    """The valgrind executable, or None."""
    return shutil.which("valgrind")


def valgrind_version() -> tuple[int, int]:
    """(major, minor) of the valgrind on PATH."""
    vg = valgrind()
    out = subprocess.run([vg or "valgrind", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def reports_fd_misuse() -> bool:
    """Valgrind 3.24+ reports the use of a closed fd (CoreError:FdBadUse,
    FdBadClose) under --track-fds and counts fds open at exit as errors;
    older ones do neither, nor know those suppression kinds."""
    if not _FD_MISUSE:
        _FD_MISUSE.append(valgrind() is not None and valgrind_version() >= (3, 24))
    return _FD_MISUSE[0]


_FD_MISUSE: list[bool] = []


_PEER_PIDFD_GAP: list[bool] = []


def misses_peer_pidfd() -> bool:
    """True if this valgrind does not record the fd that
    getsockopt(SO_PEERPIDFD) makes (tests/valgrind/peer_pidfd_probe.c under
    memcheck reports an fd error); probed once per process."""
    if not _PEER_PIDFD_GAP:
        gap = False
        if reports_fd_misuse():
            with tempfile.TemporaryDirectory(prefix="uintr-probe-") as tmp:
                exe = Path(tmp) / "peer_pidfd_probe"
                cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
                subprocess.run([*cc.split(), "-O0", "-g", "-o", str(exe), str(PEER_PIDFD_PROBE)],
                               check=True, capture_output=True, timeout=120)
                report, output = memcheck([str(exe)], timeout=120)
            gap = "pidfd" in output and "no pidfd" not in output and any(
                "closed already" in b or "already closed" in b for b in report.error_blocks)
        _PEER_PIDFD_GAP.append(gap)
    return _PEER_PIDFD_GAP[0]


def tool_suppressions(harness: bool) -> tuple[Path, ...]:
    """Entries for what this valgrind gets wrong about our fds (each file
    says why), where it does: never the interpreter's, never a leak."""
    found: list[Path] = []
    if harness and reports_fd_misuse():
        found.append(HARNESS_FD_SUPPRESSIONS)
    if misses_peer_pidfd():
        found.append(PEER_PIDFD_SUPPRESSIONS)
    return tuple(found)


def memcheck(argv: list[str], *, env: dict[str, str] | None = None,
             suppressions: tuple[Path, ...] = (), timeout: float = 600) -> tuple[Report, str]:
    """Run ``argv`` under memcheck; the parsed report and the program's output."""
    vg = valgrind()
    if vg is None:
        raise FileNotFoundError("valgrind is not installed")
    with tempfile.TemporaryDirectory(prefix="uintr-memcheck-") as tmp:
        log_path = Path(tmp) / "memcheck.log"
        exitcode = [] if reports_fd_misuse() else [f"--error-exitcode={ERROR_EXITCODE}"]
        cmd = [vg, *MEMCHECK_ARGS, *exitcode, f"--log-file={log_path}",
               *(f"--suppressions={s}" for s in suppressions), *argv]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              cwd=REPO_ROOT)
        log = log_path.read_text() if log_path.exists() else ""
    try:
        report = parse(log, proc.returncode, fds_are_errors=reports_fd_misuse())
    except ValueError as exc:
        raise ValueError(f"{exc}\nprogram stdout:\n{proc.stdout[-2000:]}\n"
                         f"stderr:\n{proc.stderr[-2000:]}") from None
    return report, proc.stdout + proc.stderr


def build_harness(out_dir: Path, inject_faults: bool = False) -> Path:
    """Compile the harness with the extension's own C flags, plus -g.
    ``inject_faults``: add a leak, an unclosed channel and an uninitialised
    read (to prove the checks catch them)."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    exe = out_dir / "core_harness"
    cmd = [*cc.split(), "-std=gnu11", "-O2", "-g", "-Wall", "-Wextra", "-Werror",
           "-Wno-unused-function", "-pthread", f"-I{INCLUDES}", "-o", str(exe),
           *(["-DHARNESS_INJECT_FAULTS"] if inject_faults else []), str(HARNESS_SOURCE)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"cannot build the harness: {' '.join(cmd)}\n{proc.stderr}")
    return exe


HARNESS_OK = "core_harness: ok"
PYTHON_OK = '{"deliveries"'


def run_harness(inject_faults: bool = False) -> tuple[Report, str]:
    """The harness under memcheck: its report and its output (the checks it
    made print a line each; ``HARNESS_OK`` last when all held)."""
    with tempfile.TemporaryDirectory(prefix="uintr-harness-") as tmp:
        exe = build_harness(Path(tmp), inject_faults)
        return memcheck([str(exe)], suppressions=tool_suppressions(harness=True), timeout=300)


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONMALLOC"] = "malloc"       # every allocation through malloc: memcheck sees it
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def run_python(posts: int = 1000, suppress: bool = True) -> tuple[Report, str]:
    """The workload under memcheck; its output ends with a JSON line of
    counts (``PYTHON_OK``) when every count checked out. ``suppress=False``:
    without python.supp, so that no report with a frame of ours can hide
    behind an entry there (read with ``problems(only_ours=True)``)."""
    return memcheck([sys.executable, str(PYTHON_WORKLOAD), str(posts)], env=python_env(),
                    suppressions=((PYTHON_SUPPRESSIONS,) if suppress else ())
                    + tool_suppressions(harness=False), timeout=600)


def main(argv: list[str]) -> int:
    if valgrind() is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    runs = argv or ["harness", "python"]
    failed = False
    for name in runs:
        # make valgrind: twice the posts the test in make test makes
        report, output = run_harness() if name == "harness" else run_python(2000)
        print(f"== {name}: {output.strip().splitlines()[-1] if output.strip() else ''}")
        print(f"   {report.summary()}")
        problems = report.problems()
        # valgrind's --error-exitcode replaces the program's own status when
        # it found errors, so success is read from the program's last words
        if {"harness": HARNESS_OK, "python": PYTHON_OK}[name] not in output:
            problems.append(f"the program failed (exit {report.returncode}):\n{output[-3000:]}")
        for problem in problems:
            print("   PROBLEM: " + problem.replace("\n", "\n      "))
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
