"""Signal handler conformance: add_signal_handler/remove_signal_handler.

Registration and argument checking run in-process (no signal is sent).
Asynchronous delivery runs in a child process on the loop under test, so a
loop that never wakes up fails on a timeout instead of hanging the suite.
"""
from __future__ import annotations

import queue
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import pytest
from _support import REPO_ROOT, LoopFactory, child_env, uvloop_deviation

CHILD_TIMEOUT = 30.0
FACTORY_NAMES = ["asyncio", "uvloop", "uintr-asyncio", "uintr-uvloop"]

PRELUDE = """
import asyncio, os, signal, sys, threading
if sys.argv[1].startswith("uintr-"):
    import uintr_loop
    loop = uintr_loop.new_event_loop(base=sys.argv[1][len("uintr-"):])
elif sys.argv[1] == "uvloop":
    import uvloop
    loop = uvloop.new_event_loop()
else:
    loop = asyncio.new_event_loop()
print("LOOP", type(loop).__name__, flush=True)
"""


# uvloop listens for signals only while it runs: outside run_forever its
# remove_signal_handler() returns False and leaves the handler installed, and
# close() does not remove handlers either.
NOT_LISTENING = (
    "uvloop's remove_signal_handler() returns False and close() leaves the "
    "handler installed unless the loop is running"
)


@pytest.fixture(autouse=True)
def _restore_signal_state() -> Iterator[None]:
    """Put back the handlers and wakeup fd these tests touch, whatever a loop
    left behind, so one loop's failure cannot leak into the next test."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    signal.set_wakeup_fd(-1)


def _script(body: str) -> str:
    return PRELUDE + textwrap.dedent(body)


def _run_child(factory_name: str, body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _script(body), factory_name],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        cwd=REPO_ROOT,
        env=child_env(),
    )


def _output_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    lines = proc.stdout.splitlines()
    assert lines and lines[0].startswith("LOOP "), (proc.stdout, proc.stderr)
    return lines[1:]


# --- in-process: registration only --------------------------------------------------


@uvloop_deviation(NOT_LISTENING)
def test_add_remove_signal_handler_return_values(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    try:
        assert loop.remove_signal_handler(signal.SIGUSR1) is False
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None)
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        assert loop.remove_signal_handler(signal.SIGUSR1) is True
        assert loop.remove_signal_handler(signal.SIGUSR1) is False
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
        loop.close()


@uvloop_deviation(NOT_LISTENING)
def test_remove_sigint_handler_restores_default_int_handler(loop_factory: LoopFactory) -> None:
    original = signal.getsignal(signal.SIGINT)
    loop = loop_factory()
    try:
        loop.add_signal_handler(signal.SIGINT, lambda: None)
        assert signal.getsignal(signal.SIGINT) is not original
        assert loop.remove_signal_handler(signal.SIGINT) is True
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        loop.close()
        signal.signal(signal.SIGINT, original)


def test_invalid_signals_are_rejected(loop_factory: LoopFactory) -> None:
    loop = loop_factory()

    async def coro_handler() -> None:
        pass

    try:
        with pytest.raises(ValueError):
            loop.add_signal_handler(10_000, lambda: None)
        with pytest.raises(ValueError):
            loop.remove_signal_handler(10_000)
        with pytest.raises(TypeError):
            loop.add_signal_handler("SIGUSR1", lambda: None)  # type: ignore[arg-type]
        with pytest.raises(RuntimeError):
            loop.add_signal_handler(signal.SIGKILL, lambda: None)
        with pytest.raises(TypeError):
            loop.add_signal_handler(signal.SIGUSR2, coro_handler)
        assert signal.getsignal(signal.SIGKILL) == signal.SIG_DFL
        assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
    finally:
        loop.close()


@uvloop_deviation(NOT_LISTENING)
def test_close_removes_signal_handlers(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    try:
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        loop.add_signal_handler(signal.SIGUSR2, lambda: None)
    finally:
        loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
    assert signal.set_wakeup_fd(-1) == -1


@uvloop_deviation("uvloop raises ValueError, not RuntimeError, for add_signal_handler() outside the main thread")
def test_add_signal_handler_outside_main_thread_raises(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        except BaseException as exc:
            errors.append(exc)

    try:
        t = threading.Thread(target=worker)
        t.start()
        t.join(CHILD_TIMEOUT)
        assert len(errors) == 1 and isinstance(errors[0], RuntimeError), errors
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    finally:
        loop.close()


# --- child process: asynchronous delivery ----------------------------------------------


@pytest.mark.parametrize("factory_name", FACTORY_NAMES)
@uvloop_deviation(NOT_LISTENING)
def test_signal_sent_from_loop_callback_runs_handler_on_loop(factory_name: str) -> None:
    proc = _run_child(
        factory_name,
        """
        fut = loop.create_future()

        def handler(tag):
            on_loop = asyncio.get_running_loop() is loop
            if not fut.done():
                fut.set_result((tag, on_loop, threading.current_thread() is threading.main_thread()))

        loop.add_signal_handler(signal.SIGUSR1, handler, "usr1")
        loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
        print("RESULT", *loop.run_until_complete(asyncio.wait_for(fut, 10)), flush=True)
        print("REMOVED", loop.remove_signal_handler(signal.SIGUSR1), loop.remove_signal_handler(signal.SIGUSR1))
        loop.close()
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert _output_lines(proc) == ["RESULT usr1 True True", "REMOVED True False"]


@pytest.mark.parametrize("factory_name", FACTORY_NAMES)
def test_signal_from_other_thread_wakes_idle_loop(factory_name: str) -> None:
    proc = _run_child(
        factory_name,
        """
        import time
        ROUNDS = 10
        state = {"fut": None, "count": 0}
        request = threading.Semaphore(0)

        def handler():
            state["count"] += 1
            state["fut"].set_result(state["count"])

        def sender():
            for _ in range(ROUNDS):
                if not request.acquire(timeout=10):
                    return
                time.sleep(0.02)
                os.kill(os.getpid(), signal.SIGUSR1)

        async def main():
            seen = []
            for _ in range(ROUNDS):
                state["fut"] = loop.create_future()
                request.release()
                seen.append(await asyncio.wait_for(state["fut"], 10))
            return seen

        loop.add_signal_handler(signal.SIGUSR1, handler)
        t = threading.Thread(target=sender, daemon=True)
        t.start()
        print("SEEN", loop.run_until_complete(main()), flush=True)
        t.join(10)
        loop.remove_signal_handler(signal.SIGUSR1)
        loop.close()
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert _output_lines(proc) == [f"SEEN {list(range(1, 11))}"]


@pytest.mark.parametrize("factory_name", FACTORY_NAMES)
def test_signals_sent_by_parent_process(factory_name: str) -> None:
    body = """
    got = asyncio.Queue()
    loop.add_signal_handler(signal.SIGUSR1, got.put_nowait, "usr1")
    loop.add_signal_handler(signal.SIGUSR2, got.put_nowait, "usr2")

    async def main():
        for _ in range(2):
            print("READY", flush=True)
            print("GOT", await asyncio.wait_for(got.get(), 10), flush=True)

    loop.run_until_complete(main())
    loop.close()
    print("DONE", flush=True)
    """
    child = subprocess.Popen(
        [sys.executable, "-c", _script(body), factory_name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=child_env(),
    )
    assert child.stdout is not None
    lines: list[str] = []
    line_queue: queue.Queue[str] = queue.Queue()
    pump = threading.Thread(target=lambda: [line_queue.put(ln.rstrip("\n")) for ln in child.stdout], daemon=True)  # type: ignore[union-attr]
    pump.start()

    def readline() -> str:
        try:
            line = line_queue.get(timeout=CHILD_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"child silent; output so far: {lines}") from None
        lines.append(line)
        return line

    try:
        assert readline().startswith("LOOP ")
        for sig, name in ((signal.SIGUSR1, "usr1"), (signal.SIGUSR2, "usr2")):
            assert readline() == "READY", lines
            child.send_signal(sig)
            assert readline() == f"GOT {name}", lines
        assert readline() == "DONE", lines
        _, err = child.communicate(timeout=CHILD_TIMEOUT)
        assert child.returncode == 0, err
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()
        pump.join(CHILD_TIMEOUT)


@pytest.mark.parametrize("factory_name", FACTORY_NAMES)
def test_signals_and_threadsafe_calls_together(factory_name: str) -> None:
    proc = _run_child(
        factory_name,
        """
        N_CALLS, N_SIGNALS, BATCH = 5000, 20, 20
        ack = threading.Event()
        calls = []
        sig_count = 0
        sig_event = asyncio.Event()

        def on_signal():
            global sig_count
            sig_count += 1
            sig_event.set()

        def hammer():
            # Batches with acknowledgement: stock asyncio shares one self-pipe between
            # wakeups and signal numbers, so an unbounded burst could fill it and drop signals.
            for start in range(0, N_CALLS, BATCH):
                ack.clear()
                for i in range(start, start + BATCH):
                    loop.call_soon_threadsafe(calls.append, i)
                loop.call_soon_threadsafe(ack.set)
                if not ack.wait(10):
                    return

        async def main():
            t = threading.Thread(target=hammer)
            t.start()
            for _ in range(N_SIGNALS):
                sig_event.clear()
                os.kill(os.getpid(), signal.SIGUSR1)
                await asyncio.wait_for(sig_event.wait(), 10)
            await asyncio.get_running_loop().run_in_executor(None, t.join, 10)
            await asyncio.sleep(0)
            return sig_count, calls == list(range(N_CALLS))

        loop.add_signal_handler(signal.SIGUSR1, on_signal)
        print("RESULT", *loop.run_until_complete(main()), flush=True)
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert _output_lines(proc) == ["RESULT 20 True"]


@pytest.mark.parametrize("factory_name", FACTORY_NAMES)
@uvloop_deviation(NOT_LISTENING)
def test_removed_handler_restores_default_action(factory_name: str) -> None:
    proc = _run_child(
        factory_name,
        """
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        loop.run_until_complete(asyncio.sleep(0))
        print("REMOVED", loop.remove_signal_handler(signal.SIGUSR1), flush=True)
        os.kill(os.getpid(), signal.SIGUSR1)
        print("STILL ALIVE", flush=True)
        """,
    )
    assert proc.returncode == -signal.SIGUSR1, (proc.stdout, proc.stderr)
    assert _output_lines(proc) == ["REMOVED True"]


@pytest.mark.parametrize("factory_name", FACTORY_NAMES)
def test_signal_handler_exception_reaches_exception_handler(factory_name: str) -> None:
    proc = _run_child(
        factory_name,
        """
        fut = loop.create_future()

        def exc_handler(lp, context):
            if not fut.done():
                fut.set_result((type(context.get("exception")).__name__, "handle" in context))

        def bad():
            raise ZeroDivisionError

        loop.set_exception_handler(exc_handler)
        loop.add_signal_handler(signal.SIGUSR1, bad)
        loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
        print("RESULT", *loop.run_until_complete(asyncio.wait_for(fut, 10)), flush=True)
        loop.remove_signal_handler(signal.SIGUSR1)
        loop.close()
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert _output_lines(proc) == ["RESULT ZeroDivisionError True"]
