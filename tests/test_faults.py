"""Faults: what happens to posts, senders and the loop when something goes
wrong mid-stream. Each test counts every post the contract says must arrive,
waits only with hang guards (a hang fails with a message, not the global
timeout), checks the loop still works afterwards (a call_soon_threadsafe and
a fresh Receiver/Sender round trip) and that the error reported is the
documented one. No timing is asserted. The child programs are in
_fault_children.py.

Covered elsewhere, not repeated here: a native sender racing close()
(test_protocol.test_receiver_closed_while_a_native_thread_is_sending), a
child process refused mid-stream and one SIGKILLed owner
(test_xproc_senders), the half-done post made in-process
(test_xproc_senders.test_half_done_post_of_a_killed_sender_is_repaired), a
KeyboardInterrupt in a handler (test_protocol).
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import json
import os
import random
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

import uintr_loop
from _fault_children import EMFILE_CHILD, FORK_CHILD, SPAWN_IN_SENDER
from _support import HANG_GUARD, child_env, guarded
from _xproc import SharedCounter, finish, kill, spawn_owner, spawn_sender
from _testcore._state import repair_count
from uintr_loop._native import NativeSender


def is_uintr(loop: asyncio.AbstractEventLoop) -> bool:
    return hasattr(loop, "_uintr_port")


async def prove_usable() -> None:
    """The running loop still takes a call_soon_threadsafe from another
    thread and, on a uintr loop, a fresh Receiver/Sender round trip."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[str] = loop.create_future()
    t = threading.Thread(target=loop.call_soon_threadsafe, args=(fut.set_result, "cst"))
    t.start()
    assert await guarded(fut) == "cst", "call_soon_threadsafe lost after the fault"
    t.join(HANG_GUARD)
    if not is_uintr(loop):
        return
    got: asyncio.Future[int] = loop.create_future()
    receiver = uintr_loop.Receiver(lambda v: got.done() or got.set_result(v))
    sender = uintr_loop.Sender(receiver.vector_fd(17))
    t = threading.Thread(target=sender.send)
    t.start()
    assert await guarded(got) == 17, "a fresh receiver got nothing after the fault"
    t.join(HANG_GUARD)
    receiver.close()


def joined(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(HANG_GUARD)
    hung = [t.name for t in threads if t.is_alive()]
    assert not hung, f"threads still running after the hang guard: {hung}"


# -- receiver closed mid-stream -------------------------------------------------

@pytest.mark.parametrize("closer", ["loop", "thread"])
def test_receiver_closed_mid_stream_under_python_and_native_senders(uintr_only_loop, closer):
    """Two Python threads and two native (no-GIL) threads post four vectors
    while the receiver is closed, from a loop callback or from another
    thread. Each sender is refused (ESHUTDOWN) at its first post after the
    close and stops; every post it counted as sent is counted by the
    receiver (posted), the refused ones as refused; no handler starts after
    close() returned (one already under way may finish, closing from a
    thread)."""
    loop = uintr_only_loop
    delivered: dict[int, int] = {}
    late: list[int] = []
    closed_at = threading.Event()

    def handler(v: int) -> None:
        if closed_at.is_set():
            late.append(v)
        delivered[v] = delivered.get(v, 0) + 1

    receiver = uintr_loop.Receiver(handler, loop=loop)
    py_sent = {3: 0, 4: 0}
    py_errors: dict[int, BaseException] = {}

    def python_sender(vector: int) -> None:
        sender = uintr_loop.Sender(receiver.vector_fd(vector))
        try:
            while True:
                sender.send()
                py_sent[vector] += 1
        except BaseException as exc:
            py_errors[vector] = exc

    threads = [threading.Thread(target=python_sender, args=(v,), name=f"py{v}") for v in py_sent]
    natives = {v: NativeSender(uintr_loop.Sender(receiver.vector_fd(v)), 10**12, 2000, 64)
               for v in (5, 6)}
    for t in threads:
        t.start()

    def ready() -> bool:
        return (all(n >= 200 for n in py_sent.values())
                and all(n.published >= 1000 for n in natives.values())
                and set(delivered) >= {3, 4, 5, 6})

    def close() -> None:
        receiver.close()
        closed_at.set()

    async def main() -> None:
        if closer == "loop":
            while not ready():
                await asyncio.sleep(0.001)
            close()
        else:
            def from_thread() -> None:
                while not ready():
                    threading.Event().wait(0.001)
                close()
            await asyncio.to_thread(from_thread)
        results = [await asyncio.to_thread(n.join) for n in natives.values()]
        await asyncio.to_thread(joined, threads)
        for _ in range(5):
            await asyncio.sleep(0)
        for sent, error in results:
            assert error == -errno.ESHUTDOWN and sent >= 1000
        natives_sent = sum(sent for sent, _ in results)
        for v in py_sent:
            exc = py_errors[v]
            assert isinstance(exc, uintr_loop.ReceiverClosedError), repr(exc)
            assert exc.errno == errno.ESHUTDOWN
        st = receiver.statistics()
        assert st.posted == natives_sent + sum(py_sent.values())
        assert st.refused == 4                 # each sender stopped at its first refusal
        assert st.posted == st.notifications + st.coalesced + st.suppressed
        assert len(late) <= (0 if closer == "loop" else 1), late
        with pytest.raises(uintr_loop.ReceiverClosedError):
            receiver.vector_fd(3)
        await prove_usable()

    loop.run_until_complete(guarded(main(), HANG_GUARD * 3))


# -- a handler that raises --------------------------------------------------------

class NotAnError(BaseException):
    """A BaseException that is neither Exception, SystemExit nor KeyboardInterrupt."""


@pytest.mark.parametrize("exc_type", [ValueError, GeneratorExit, asyncio.CancelledError, NotAnError])
def test_handler_exceptions_reach_the_exception_handler_and_delivery_goes_on(
        uintr_only_loop, exc_type):
    """Every delivery of vector 10 raises; vectors posted before, with and
    after each failure (from another thread) are still delivered, each
    exception is reported once with the receiver, and nothing escapes
    run_until_complete."""
    loop = uintr_only_loop
    contexts: list[dict[str, object]] = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    got: list[int] = []
    rounds = 20

    def handler(v: int) -> None:
        got.append(v)
        if v == 10:
            raise exc_type("handler failed")

    receiver = uintr_loop.Receiver(handler, loop=loop)
    senders = {v: uintr_loop.Sender(receiver.vector_fd(v)) for v in (10, 4)}

    async def main() -> None:
        for i in range(rounds):
            done = loop.create_future()

            def post() -> None:
                senders[10].send()
                senders[4].send()
                loop.call_soon_threadsafe(done.set_result, None)

            t = threading.Thread(target=post)
            t.start()
            await guarded(done)
            t.join(HANG_GUARD)
            while len(got) < 2 * (i + 1):
                await asyncio.sleep(0.001)
        await prove_usable()

    loop.run_until_complete(guarded(main(), HANG_GUARD * 3))
    assert got == [10, 4] * rounds             # highest first, each round, none lost
    assert len(contexts) == rounds
    assert all(type(c["exception"]) is exc_type and c["receiver"] is receiver for c in contexts)
    assert receiver.statistics().delivered == 2 * rounds


# -- a handler (or callback) that blocks --------------------------------------------

@pytest.mark.parametrize("how", ["event", "sleep"])
def test_blocking_callback_delays_but_loses_no_threadsafe_callback(loop_factory, how):
    """A callback blocks the loop (on an Event another thread sets once it
    has posted everything, or in time.sleep while it posts): every
    call_soon_threadsafe made meanwhile runs afterwards, once, in order."""
    n = 2000
    ran: list[int] = []
    entered = threading.Event()
    posted = threading.Event()
    loop = loop_factory()

    def blocker() -> None:
        entered.set()
        if how == "event":
            assert posted.wait(HANG_GUARD), "the poster never finished"
        else:
            import time
            time.sleep(0.2)

    def poster() -> None:
        assert entered.wait(HANG_GUARD)
        for i in range(n):
            loop.call_soon_threadsafe(ran.append, i)
        posted.set()

    async def main() -> None:
        t = threading.Thread(target=poster)
        t.start()
        loop.call_soon(blocker)
        await asyncio.to_thread(posted.wait, HANG_GUARD)
        while len(ran) < n:
            await asyncio.sleep(0.001)
        t.join(HANG_GUARD)
        await prove_usable()

    try:
        loop.run_until_complete(guarded(main(), HANG_GUARD * 2))
    finally:
        loop.close()
    assert ran == list(range(n))


@pytest.mark.parametrize("how", ["event", "sleep"])
def test_blocking_handler_coalesces_posts_made_meanwhile(uintr_only_loop, how):
    """The handler of vector 1 blocks while another thread posts vectors 1
    and 2 many times: once it returns, each is delivered once more (posts
    coalesce), highest first, never nested, and every post is counted."""
    loop = uintr_only_loop
    n = 5000
    calls: list[int] = []
    depth = [0, 0]                 # current, deepest
    entered = threading.Event()
    posted = threading.Event()

    def handler(v: int) -> None:
        depth[0] += 1
        depth[1] = max(depth)
        calls.append(v)
        if len(calls) == 1:
            entered.set()
            if how == "event":
                assert posted.wait(HANG_GUARD), "the poster never finished"
            else:
                import time
                for _ in range(int(HANG_GUARD / 0.05)):
                    time.sleep(0.05)
                    if posted.is_set():
                        break
        depth[0] -= 1

    receiver = uintr_loop.Receiver(handler, loop=loop)
    one = uintr_loop.Sender(receiver.vector_fd(1))
    two = uintr_loop.Sender(receiver.vector_fd(2))

    def poster() -> None:
        assert entered.wait(HANG_GUARD)
        for _ in range(n):
            one.send()
            two.send()
        posted.set()

    async def main() -> None:
        t = threading.Thread(target=poster)
        t.start()
        one.send()
        await asyncio.to_thread(posted.wait, HANG_GUARD)
        while len(calls) < 3:
            await asyncio.sleep(0.001)
        t.join(HANG_GUARD)
        for _ in range(5):
            await asyncio.sleep(0)
        await prove_usable()

    loop.run_until_complete(guarded(main(), HANG_GUARD * 2))
    assert calls == [1, 2, 1]
    assert depth[1] == 1
    st = receiver.statistics()
    assert st.posted == 1 + 2 * n and st.delivered == 3


# -- a signal storm on the loop thread ----------------------------------------------

@pytest.mark.parametrize("install", ["add_signal_handler", "signal.signal"])
def test_signal_storm_on_the_loop_thread(loop_factory, install):
    """Thousands of SIGUSR1 at the loop's (main) thread, while threads post
    call_soon_threadsafe callbacks (and, on uintr loops, a Python and a
    native sender post a vector): every callback runs once and in order, the
    vector's last post is delivered, the native sender is never refused or
    interrupted into an error, no InterruptedError escapes, and a deadline
    armed during the storm still fires (the preemption signal path)."""
    assert threading.current_thread() is threading.main_thread()
    storm, n = 3000, 3000
    loop = loop_factory()
    caught = [0]
    main_id = threading.get_ident()
    ran: list[int] = []
    counter = [0]
    seen = [0]
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

    def on_signal(*_: object) -> None:
        caught[0] += 1

    async def main() -> None:
        if install == "add_signal_handler":
            loop.add_signal_handler(signal.SIGUSR1, on_signal)
        else:
            signal.signal(signal.SIGUSR1, on_signal)

        def stormer() -> None:
            for i in range(storm):
                if i % 2:
                    signal.pthread_kill(main_id, signal.SIGUSR1)
                else:
                    os.kill(os.getpid(), signal.SIGUSR1)

        def poster() -> None:
            for i in range(n):
                loop.call_soon_threadsafe(ran.append, i)

        threads = [threading.Thread(target=stormer), threading.Thread(target=poster)]
        native = None
        if is_uintr(loop):
            receiver = uintr_loop.Receiver(lambda v: seen.__setitem__(0, counter[0]))
            sender = uintr_loop.Sender(receiver.vector_fd(8))

            def vector_poster() -> None:
                for i in range(1, n + 1):
                    counter[0] = i
                    sender.send()

            threads.append(threading.Thread(target=vector_poster))
            native = NativeSender(uintr_loop.Sender(receiver.vector_fd(9)), 20_000, 1000, 16)
        for t in threads:
            t.start()
        # a deadline under the storm: the preemption signal still lands
        with pytest.raises(TimeoutError):
            async with uintr_loop.deadline(0.05):
                while True:
                    pass
        await asyncio.to_thread(joined, threads)
        while len(ran) < n or (native is not None and seen[0] != n):
            await asyncio.sleep(0.001)
        if native is not None:
            assert await asyncio.to_thread(native.join) == (20_000, 0)
        before = caught[0]
        signal.pthread_kill(main_id, signal.SIGUSR1)
        while caught[0] == before:              # and signals are still handled
            await asyncio.sleep(0.001)
        await prove_usable()

    # asyncio's add_signal_handler sets the wakeup fd with warn_on_full_buffer
    # left on: under a storm CPython reports "Exception ignored when trying to
    # write to the signal wakeup fd: BlockingIOError" (the pipe is full, so a
    # wakeup is already pending). Stock asyncio and the asyncio base do this
    # alike. That report, and only that, is allowed.
    unraisable: list[object] = []
    previous_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        loop.run_until_complete(guarded(main(), HANG_GUARD * 3))
    finally:
        if install == "add_signal_handler" and not loop.is_closed():
            loop.remove_signal_handler(signal.SIGUSR1)
        signal.signal(signal.SIGUSR1, previous)
        loop.close()
        sys.unraisablehook = previous_hook
    def wakeup_fd_full(u: object) -> bool:
        message = getattr(u, "err_msg", None)      # 3.11 passes none; 3.12+ names the fd
        return (isinstance(getattr(u, "exc_value", None), BlockingIOError)
                and (message is None or "signal wakeup fd" in message))

    unexpected = [u for u in unraisable if not wakeup_fd_full(u)]
    assert unexpected == [], [(getattr(u, "err_msg", None), getattr(u, "exc_value", None))
                              for u in unexpected]
    assert ran == list(range(n))
    assert 1 <= caught[0] <= storm + 1
    assert errors == []


# -- fd exhaustion (EMFILE) -----------------------------------------------------------

def open_fds() -> dict[int, str]:
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return fds


@contextlib.contextmanager
def only_free_fds(k: int) -> Iterator[None]:
    """Leave exactly ``k`` free descriptors under a lowered RLIMIT_NOFILE
    (the lowest free numbers are filled with /dev/null); restore on exit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(open_fds()) + 64, hard))
    fill: list[int] = []
    try:
        while True:
            try:
                fill.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            except OSError as exc:
                assert exc.errno == errno.EMFILE
                break
        for _ in range(k):
            os.close(fill.pop())
        yield
    finally:
        for fd in fill:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def refused_until_enough_fds(make, most: int = 12, leak_check: bool = True) -> list[str]:
    """Call ``make()`` with 0, 1, 2... free fds until it succeeds; every
    failure must be OSError(EMFILE) and leave no fd behind. Returns the
    failures' messages."""
    failures = []
    for k in range(most + 1):
        gc.collect()
        before = open_fds()
        refusal: BaseException | None = None
        with only_free_fds(k):
            try:
                made = make()
            except BaseException as exc:
                # keep it (and the half-made object its traceback holds) until
                # fds are free again: finalizers and pytest's reporting need some
                refusal, made = exc, None
        if refusal is not None:
            assert isinstance(refusal, OSError) and refusal.errno == errno.EMFILE, \
                f"with {k} free fds: {refusal!r}, not OSError(EMFILE)"
            failures.append(str(refusal))
            del refusal
        gc.collect()
        if made is not None:
            return failures
        if leak_check:
            assert open_fds() == before, f"a refused attempt with {k} free fds left fds behind"
    pytest.fail(f"still refused with {most} free fds")


# stock asyncio's half-made loop raises AttributeError (no _ssock) in its
# __del__; uvloop's logs "deallocating an open event loop". Theirs, not ours.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_fd_exhaustion_creating_a_loop(request, loop_factory):
    """A loop that cannot get its fds raises OSError(EMFILE) and leaves none
    open. (Not checked on stock asyncio: its half-made loop fails in __del__
    before closing its epoll fd, and pytest keeps that exception, and the fd,
    until the test ends. UintrEventLoop closes what it made.)"""
    warm = loop_factory()               # process-wide fds (libuv's) come first
    warm.run_until_complete(asyncio.sleep(0))
    warm.close()
    made: list[asyncio.AbstractEventLoop] = []
    failures = refused_until_enough_fds(lambda: made.append(loop_factory()) or made[-1],
                                        leak_check=request.node.callspec.params["loop_factory"]
                                        != "asyncio")
    assert failures, "a loop was made with no fd free"
    loop = made[0]
    try:
        loop.run_until_complete(prove_usable())
    finally:
        loop.close()


def test_fd_exhaustion_receivers_vector_fds_and_senders(uintr_only_loop):
    """At the fd limit: Receiver, Sender(VectorFd) and send need no fd and
    work (the post is delivered); a vector fd or Sender(fd) is refused with OSError(EMFILE),
    leaving no fd behind; once fds are free again both work."""
    loop = uintr_only_loop
    got: list[int] = []
    receiver = uintr_loop.Receiver(got.append, loop=loop)
    vfd = receiver.vector_fd(3)
    gc.collect()
    with only_free_fds(0):
        other = uintr_loop.Receiver(got.append, loop=loop)
        with pytest.raises(OSError) as info:
            other.vector_fd(1)
        assert info.value.errno == errno.EMFILE
        with pytest.raises(OSError) as info:
            uintr_loop.Sender(vfd.fileno())
        assert info.value.errno == errno.EMFILE and "Too many open files" in str(info.value)
        uintr_loop.Sender(vfd).send()                  # in-process: no fd needed
        other.close()
    # (run after the limit: plain uvloop's run_forever needs fds at its start,
    # and at the limit it fails leaving the loop marked running for good)
    loop.run_until_complete(asyncio.sleep(0.001))
    assert got == [3]
    vfds: list[uintr_loop.VectorFd] = []
    failures = refused_until_enough_fds(lambda: vfds.append(receiver.vector_fd(5)) or vfds[-1])
    assert failures and all("cannot create a vector fd" in f for f in failures)
    senders: list[uintr_loop.Sender] = []
    failures = refused_until_enough_fds(
        lambda: senders.append(uintr_loop.Sender(vfds[0].fileno())) or senders[-1])
    assert failures and all("cannot open vector fd" in f for f in failures)
    senders[0].send()
    loop.run_until_complete(guarded(prove_usable()))
    assert got == [3, 5]


def test_fd_exhaustion_opening_a_sender_in_another_process(uintr_only_loop):
    """A sender process at its fd limit: Sender(fd) (mapping, pidfd, the
    liveness watch) is refused with OSError(EMFILE) and leaks nothing until
    there is room; then its posts arrive."""
    loop = uintr_only_loop
    got: list[int] = []
    receiver = uintr_loop.Receiver(got.append, loop=loop)
    vfd = receiver.vector_fd(7)
    proc = subprocess.Popen([sys.executable, "-c", EMFILE_CHILD, str(vfd.fileno())],
                            pass_fds=(vfd.fileno(),), env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    vfd.close()

    async def main() -> list[list[object]]:
        out, err = await asyncio.to_thread(proc.communicate, timeout=HANG_GUARD * 3)
        assert proc.returncode == 0, err[-3000:]
        while not got:
            await asyncio.sleep(0.001)
        await prove_usable()
        return list(json.loads(out))

    try:
        failures = loop.run_until_complete(guarded(main(), HANG_GUARD * 4))
    finally:
        kill(proc)
    assert failures, "the child opened a sender with no fd free"
    assert all(f[1] == errno.EMFILE and f[2] == "OSError" for f in failures), failures
    assert receiver.statistics().posted == 100 and got and set(got) == {7}


# -- a sender process SIGKILLed mid-send, many times ---------------------------------------

def test_sender_processes_killed_at_random_points_lose_no_posted_post(uintr_only_loop):
    """Child processes post through a vector fd in a loop and are SIGKILLed at
    random points (one of them right after the first half of a post: ON
    set, no notification). After each death, the last post the receiver
    counted (posted) is delivered: the handler, which reads the counter the
    children publish before each post, sees at least that number. All the
    while a thread of this process posts to another receiver; its last
    post arrives too, and call_soon_threadsafe keeps working."""
    loop = uintr_only_loop
    rng = random.Random(os.getpid())
    counter = SharedCounter()
    seen = [0]
    event = asyncio.Event()

    def handler(v: int) -> None:
        seen[0] = max(seen[0], counter.value)
        event.set()

    receiver = uintr_loop.Receiver(handler, loop=loop)
    vfd = receiver.vector_fd(11)
    local_seen = [0]
    local_counter = [0]
    bystander = uintr_loop.Receiver(lambda v: local_seen.__setitem__(0, local_counter[0]),
                                    loop=loop)
    local_sender = uintr_loop.Sender(bystander.vector_fd(2))
    stop = threading.Event()

    def local_posts() -> None:
        while not stop.is_set():
            local_counter[0] += 1
            local_sender.send()
            if local_counter[0] % 64 == 0:
                stop.wait(0.0005)

    kills = 6
    plans = ["half"] + [rng.choice(["early", "mid", "late"]) for _ in range(kills - 1)]

    async def main() -> None:
        local = threading.Thread(target=local_posts)
        local.start()
        repairs = repair_count(loop)
        for plan in plans:
            start = receiver.statistics().posted
            first = max(seen[0], counter.value)    # the children's numbers keep rising
            proc = spawn_sender({"count": 10**9, "vfd": vfd.fileno(), "counter": counter.fd,
                                 "start": first, "half": plan == "half"},
                                (vfd.fileno(), counter.fd))
            try:
                assert proc.stdout is not None
                line = await asyncio.to_thread(proc.stdout.readline)
                assert line.strip() == "ready", line
                if plan != "half":
                    target = start + {"early": 1, "mid": 500, "late": 5000}[plan] \
                        + rng.randrange(500)
                    while receiver.statistics().posted < target:
                        await asyncio.sleep(0.0005)
                proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(proc.wait, HANG_GUARD)
            finally:
                kill(proc)
            posted = receiver.statistics().posted
            assert posted > start
            last = first + posted - start      # the number of the last post counted
            while seen[0] < last:              # the repair, if needed, makes it arrive
                event.clear()
                await event.wait()
            await prove_usable()
        assert repair_count(loop) > repairs    # the half-done post was repaired
        stop.set()
        await asyncio.to_thread(joined, [local])
        while local_seen[0] != local_counter[0]:
            await asyncio.sleep(0.001)

    try:
        loop.run_until_complete(guarded(main(), HANG_GUARD * 6))
    finally:
        stop.set()
        counter.close()
    st = receiver.statistics()
    assert st.refused == 0 and st.posted == st.notifications + st.coalesced + st.suppressed
    assert bystander.statistics().posted == local_counter[0]


# -- the receiving process killed ------------------------------------------------------

def test_receiver_process_killed_under_many_senders() -> None:
    """The owner of a loop is SIGKILLed while two sender processes (one
    Python, one native) and a thread here post to it: each learns it through
    the liveness watch, ends with ESHUTDOWN by itself (no hang), and a new
    Sender(fd) is refused. Our own loop is untouched."""
    proc, fd = spawn_owner(13, "run")
    counters = [SharedCounter(), SharedCounter()]
    senders = []
    try:
        for i, c in enumerate(counters):
            senders.append(spawn_sender({"count": 10**12, "native": i == 1, "pause_ns": 20_000,
                                         "vfd": fd, "counter": c.fd}, (fd, c.fd)))
        here = uintr_loop.Sender(fd)
        native_here = NativeSender(here, 10**12, 20_000, 8)
        for s in senders:                   # both registered (Sender made) and posting
            assert s.stdout is not None
            assert s.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=HANG_GUARD)
        results = [finish(s) for s in senders]
        assert results[0]["error"] == errno.ESHUTDOWN, results
        assert results[1]["error"] == -errno.ESHUTDOWN, results
        sent, error = native_here.join()
        assert error == -errno.ESHUTDOWN
        with pytest.raises(uintr_loop.ReceiverClosedError):
            here.send()
        with pytest.raises(uintr_loop.ReceiverClosedError):
            uintr_loop.Sender(fd)
    finally:
        kill(proc)
        for s in senders:
            kill(s)
        for c in counters:
            c.close()
        os.close(fd)
    for base in ("asyncio", "uvloop"):
        loop = uintr_loop.new_event_loop(base=base)
        try:
            loop.run_until_complete(prove_usable())
        finally:
            loop.close()


# -- fork while senders run -------------------------------------------------------------


@pytest.mark.parametrize("when", ["between-runs", "in-callback"])
@pytest.mark.parametrize("kind", ["stock", "asyncio", "uvloop"])
def test_fork_while_senders_run(kind, when):
    """fork() while threads (and a native thread) post to the loop, either
    between two runs of the loop or from inside one of its callbacks. The
    parent's posts all arrive (exact counts, in order). In the child, a
    fresh loop works fully; the inherited uintr loop refuses to run with a
    RuntimeError naming its owner (it shares the parent's table: running it
    took the parent's posts), while stock asyncio lets the child run its copy
    (sharing the parent's epoll set and self-pipe, as asyncio always has);
    a Sender from the inherited VectorFd reaches the parent, and the child
    closes its copy. The parent, blocked afterwards, is still woken by
    call_soon_threadsafe, a post and a signal (closing the copy must not
    unregister anything from the epoll set parent and child share)."""
    out = subprocess.run([sys.executable, "-c", FORK_CHILD, kind, when],
                         env=child_env(), capture_output=True, text=True,
                         timeout=HANG_GUARD * 6)
    assert out.returncode == 0, out.stderr[-3000:]
    child_line, parent_line = out.stdout.strip().splitlines()[-2:]
    child, parent = json.loads(child_line), json.loads(parent_line)
    assert child["fresh"] is True and child["closed"] is (kind != "stock")
    if kind == "stock":
        assert child["inherited"] is None, child   # asyncio lets the child run it
    else:
        assert child["inherited"] is not None and "belongs to process" in child["inherited"], child
    assert parent["status"] == 0 and parent["ran"] == 20_000 and parent["in_order"], parent
    assert parent["woken"] == (["cst", "signal"] if kind == "stock" else ["cst", 9, "signal"]), parent
    if kind != "stock":
        assert parent["last_seen"] == 20_000
        assert parent["posted"] == 40_000          # 20k Python + 20k native, none lost
        assert parent["child_posts"] == 100


def test_uvloop_spawning_a_subprocess_in_a_sender_process() -> None:
    """Regression: uvloop runs CPython's at-fork hooks from inside fork()
    when it spawns a subprocess; in a process holding a lease on another
    process's table, the liveness hook then waited for ever on the lock fork
    held (the spawned child hung before exec, and the loop with it)."""
    out = subprocess.run([sys.executable, "-c", SPAWN_IN_SENDER], env=child_env(),
                         capture_output=True, text=True, timeout=HANG_GUARD * 6)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "exit 0", (out.stdout, out.stderr[-3000:])


# The parent blocks with nothing scheduled (no timer wakes it), after a fork
# child closed its copy of the loop; prints what woke it.
CLOSED_COPY_CHILD = r"""
import asyncio, os, sys, threading, time
import uintr_loop
loop = uintr_loop.new_event_loop(base=sys.argv[1])
loop.run_until_complete(asyncio.sleep(0))
pid = os.fork()
if pid == 0:
    loop.close()
    os._exit(0)
os.waitpid(pid, 0)
async def main():
    fired = []
    guard = loop.call_later(5, fired.append, "guard")   # hang guard: says it woke the loop
    fut = loop.create_future()
    threading.Thread(target=lambda: (time.sleep(0.05),
                                     loop.call_soon_threadsafe(fut.set_result, "cst"))).start()
    woken = await fut
    guard.cancel()
    return " ".join([woken] + fired)
print(loop.run_until_complete(main()), flush=True)
loop.close()
"""


@pytest.mark.parametrize("base", ["asyncio", "uvloop"])
def test_fork_child_closing_its_copy_keeps_the_parents_wakeup(base: str) -> None:
    """Regression: on uvloop, closing a fork child's copy of the loop did
    EPOLL_CTL_DEL of the port's eventfd on libuv's epoll set, which the
    parent shares: the parent, blocked with no timer due, was never woken by
    call_soon_threadsafe (only the hang guard's timer woke it)."""
    out = subprocess.run([sys.executable, "-c", CLOSED_COPY_CHILD, base], env=child_env(),
                         capture_output=True, text=True, timeout=HANG_GUARD * 6)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "cst", (out.stdout, out.stderr[-3000:])
