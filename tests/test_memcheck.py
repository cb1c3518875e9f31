"""The core under valgrind memcheck (tests/_memcheck.py has the runs and the
rules; ``make valgrind`` prints their summaries).

* The C harness: the core's headers alone, with threads, fds and a forked
  owner. No error, nothing definitely or indirectly lost, no fd left open
  but the liveness watcher's epoll set.
* The compiled extension under the interpreter, on both bases, with no
  suppression: no error and no definite leak with a frame of ours anywhere in
  its stack, no fd of ours left open. (``make valgrind`` is strict: no error
  at all once CPython 3.11's own reports are suppressed, tests/valgrind/python.supp.)
* The checks can fail: the harness built with a leak, an unclosed channel and
  an uninitialised read injected is caught on all three.
"""
from __future__ import annotations

import sysconfig

import pytest

import _memcheck

pytestmark = pytest.mark.skipif(
    _memcheck.valgrind() is None,
    reason="valgrind is not installed (probed: `valgrind` on PATH); apt-get install valgrind",
)


def _explain(report: _memcheck.Report, output: str) -> str:
    return f"{report.summary()}\nprogram output:\n{output[-2000:]}\nlog:\n{report.log[-6000:]}"


def test_c_core_runs_clean_under_memcheck() -> None:
    report, output = _memcheck.run_harness()
    assert _memcheck.HARNESS_OK in output, _explain(report, output)
    assert report.problems() == [], _explain(report, output)
    assert report.errors == 0 and report.definitely_lost == 0 and report.indirectly_lost == 0
    # the watcher's epoll set is the one fd the run leaves, and it did start
    assert len(report.created_fds()) == 1, _explain(report, output)
    assert report.returncode == 0


@pytest.mark.skipif(
    bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    reason="a free-threaded build (probed sysconfig Py_GIL_DISABLED=1) allocates through "
    "mimalloc only: it refuses PYTHONMALLOC=malloc, which memcheck needs to see Python's "
    "allocations ('preconfig_init_allocator: PYTHONMALLOC: unknown allocator')",
)
def test_extension_runs_clean_under_memcheck() -> None:
    report, output = _memcheck.run_python(suppress=False)
    assert _memcheck.PYTHON_OK in output, _explain(report, output)
    assert report.problems(only_ours=True) == [], _explain(report, output)


def test_memcheck_checks_catch_injected_faults() -> None:
    report, output = _memcheck.run_harness(inject_faults=True)
    assert _memcheck.HARNESS_OK in output, _explain(report, output)
    problems = report.problems()
    assert any(p.startswith("error in our code") and "inject_faults" in p for p in problems)
    assert any(p.startswith("leak in our code") and "inject_faults" in p for p in problems)
    assert any(p.startswith("fd left open") and "uintr_channel_open" in p for p in problems)
    assert report.definitely_lost == 64
    if _memcheck.reports_fd_misuse():      # valgrind 3.24+: the log says it all
        assert report.errors >= 2
    else:
        assert report.returncode == _memcheck.ERROR_EXITCODE


def test_report_reader_attributes_frames() -> None:
    log = "\n".join([
        "==7== Memcheck, a memory error detector",
        "==7== Command: python x.py",
        "==7== ",
        "==7== Invalid read of size 8",
        "==7==    at 0x1: __pyx_f_10uintr_loop_5_core_4Port_dispatch (_core.c:123)",
        "==7==    by 0x2: _PyEval_EvalFrameDefault (ceval.c:1)",
        "==7== ",
        "==7== Conditional jump or move depends on uninitialised value(s)",
        "==7==    at 0x3: some_cpython_function (object.c:9)",
        "==7== ",
        "==8== Invalid write of size 1",             # a forked child: not ours to read
        "==8==    at 0x9: uintr_upid_post (upid.h:99)",
        "==8== ",
        "==7== FILE DESCRIPTORS: 5 open (3 std) at exit.",
        "==7== Open file descriptor 9:",
        "==7==    at 0x4: eventfd (syscall-template.S:120)",
        "==7==    by 0x5: uintr_channel_open (notify.h:29)",
        "==7== ",
        "==7== Open file descriptor 3: /dev/null",
        "==7==    <inherited from parent>",
        "==7== ",
        "==7== 48 bytes in 1 blocks are definitely lost in loss record 1 of 9",
        "==7==    at 0x6: malloc (vg_replace_malloc.c:1)",
        "==7==    by 0x7: uintr_peers_add (vectorfd.h:360)",
        "==7== ",
        "==7== LEAK SUMMARY:",
        "==7==    definitely lost: 48 bytes in 1 blocks",
        "==7==    indirectly lost: 0 bytes in 0 blocks",
        "==7== ERROR SUMMARY: 3 errors from 3 contexts (suppressed: 0 from 0)",
    ])
    report = _memcheck.parse(log)
    assert (report.errors, report.definitely_lost, report.open_fds, report.std_fds) == (3, 48, 5, 3)
    assert len(report.error_blocks) == 2 and len(report.created_fds()) == 1
    assert [p.split(":")[0] for p in report.problems(only_ours=True)] == [
        "error in our code", "leak in our code", "fd left open"]
    assert [p.split(":")[0] for p in report.problems()] == [
        "error in our code", "error (not suppressed; read it, then fix or suppress)",
        "leak in our code", "lost", "fd left open", "ERROR SUMMARY"]
