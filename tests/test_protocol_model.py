"""Property tests: the compiled protocol against the pure-Python reference.

Hypothesis draws random operation sequences and runs each on the compiled
core and on ``protocol_reference`` side by side:

* ``UpidMachine``: upid.h itself through ``_testcore._cells.UpidCell`` (post, recognise,
  pending, suppress, restore, shutdown, init), single-threaded; every return
  value and the whole state (status word, PIR, counters) after every step.
* ``ReceiverMachine*``: a real uintr loop on each base with several
  receivers: sends, masking from the test and from inside handlers (nested),
  handlers that send and close, the loop about to block, close; after every
  step the handler-call log, every receiver's statistics and the loop's.
* Real threads, where the interleaving cannot be predicted: the outcome must
  be one the model allows (counters add up to the posts made, every post is
  recognised, exactly one recognised notification per notifying post, no
  lost wakeup, deliveries of one batch highest first, none after close,
  never nested).

Bounded: a few dozen examples each, no deadline, no example database, not
derandomised (each run explores new sequences).
"""
from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import threading
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import uintr_loop
from _support import HANG_GUARD, guarded
from protocol_reference import (
    POST_COALESCED,
    POST_NOTIFY,
    POST_SHUTDOWN,
    POST_SUPPRESSED,
    Figures,
    ReferenceClosedError,
    ReferenceLoop,
    Upid,
    highest,
)
from _testcore._cells import PacedPoster, UpidCell
from _testcore._state import repair_count
from uintr_loop._native import NativeSender

MACHINE_SETTINGS = settings(
    max_examples=50,
    stateful_step_count=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

vectors = st.integers(0, 63) | st.sampled_from([0, 1, 62, 63])
bad_vectors = st.sampled_from([-1, 64, 1 << 70, 1.0, "3", None, True])


# -- upid.h: UpidCell against Upid, one step at a time ------------------------

def test_cell_constants_are_upid_h():
    from _testcore import _cells as _core

    assert (_core.POST_NOTIFY, _core.POST_COALESCED, _core.POST_SUPPRESSED) == (
        POST_NOTIFY,
        POST_COALESCED,
        POST_SUPPRESSED,
    )


def test_cell_calls_every_function_of_upid_h():
    """UpidCell is the window onto upid.h: each function there is called by
    it (so a step added to the protocol gets into the property tests too)."""
    import re

    from _support import REPO_ROOT

    header = (REPO_ROOT / "cython_src" / "includes" / "upid.h").read_text()
    cell = (REPO_ROOT / "tests" / "_testcore" / "_cells.pyx").read_text()
    functions = re.findall(r"static inline \w+(?: \*)?\s*\*?(uintr_\w+)\(", header)
    assert len(functions) >= 10
    assert [f for f in functions if f + "(" not in cell] == []


class UpidMachine(RuleBasedStateMachine):
    """upid.h's functions on one block, against the reference's Upid."""

    @initialize(nv=st.integers(0, 63), ndst=st.integers(0, 2**32 - 1))
    def start(self, nv: int, ndst: int) -> None:
        self.cell = UpidCell(nv, ndst)
        self.ref = Upid(nv, ndst)

    @rule(vector=vectors)
    def post(self, vector: int) -> None:
        assert self.cell.post(vector) == self.ref.post(vector)

    @rule(vs=st.lists(vectors, max_size=8))
    def post_all(self, vs: list[int]) -> None:
        assert self.cell.post_all(vs) == [self.ref.post(v) for v in vs]

    @rule(vector=bad_vectors)
    def post_bad_vector(self, vector: Any) -> None:
        # the public API's check_vector: same exception, state untouched
        expected = TypeError if isinstance(vector, bool) or not isinstance(vector, int) else ValueError
        with pytest.raises(expected, match="vector must be"):
            self.cell.post(vector)
        with pytest.raises(expected, match="vector must be"):
            self.cell.post_all([1, vector])

    @rule()
    def recognise(self) -> None:
        assert self.cell.recognise() == self.ref.recognise()

    @rule()
    def pending(self) -> None:
        assert self.cell.pending() == self.ref.pending()

    @rule()
    def suppress(self) -> None:
        self.cell.suppress()
        self.ref.suppress()

    @rule()
    def restore(self) -> None:
        assert self.cell.restore() == self.ref.restore()

    @rule()
    def shutdown(self) -> None:
        self.cell.shutdown()
        self.ref.shutdown()

    @rule(nv=st.integers(0, 63), ndst=st.integers(0, 2**32 - 1))
    def init(self, nv: int, ndst: int) -> None:
        self.cell.init(nv, ndst)
        self.ref.init(nv, ndst)

    @rule(bits=st.integers(1, 2**64 - 1))
    def highest(self, bits: int) -> None:
        assert UpidCell.highest(bits) == highest(bits)

    @invariant()
    def same_state(self) -> None:
        cell, ref = self.cell, self.ref
        assert (cell.status, cell.pir) == (ref.status, ref.pir)
        assert (cell.on, cell.sn, cell.shut) == (ref.on, ref.sn, ref.shut)
        assert cell.counters() == ref.counters()
        st_ = cell.statistics()
        assert (st_.posted, st_.refused) == (ref.posted, ref.refused)


TestUpidMachine = UpidMachine.TestCase
TestUpidMachine.settings = settings(MACHINE_SETTINGS, max_examples=100)


# -- the loop: receivers on a real uintr loop against ReferenceLoop -----------

MAX_RECEIVERS = 4
machine_vectors = st.sampled_from([0, 1, 2, 7, 31, 32, 62, 63])

# A handler program: what the next delivery to a receiver does (one-shot).
# ("send", target, vector) | ("close", target) | ("masked", target, [actions])
leaf_actions = st.one_of(
    st.tuples(st.just("send"), st.integers(0, MAX_RECEIVERS - 1), machine_vectors),
    st.tuples(st.just("close"), st.integers(0, MAX_RECEIVERS - 1)),
)
actions = st.one_of(
    leaf_actions,
    st.tuples(st.just("masked"), st.integers(0, MAX_RECEIVERS - 1), st.lists(leaf_actions, max_size=2)),
)
programs = st.lists(actions, min_size=1, max_size=3)


class World:
    """What both sides share: receivers by index, their handler programs and
    the log of what the handlers did."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.programs: list[deque[list[Any]]] = []

    def handler_for(self, index: int) -> Callable[[int], None]:
        def handler(vector: int) -> None:
            self.log.append(("deliver", index, vector))
            if self.programs[index]:
                self.run(self.programs[index].popleft())

        return handler

    def run(self, program: list[Any]) -> None:
        for action in program:
            target = action[1] % len(self.programs)
            if action[0] == "send":
                self.log.append(("send", target, action[2], self.send(target, action[2])))
            elif action[0] == "close":
                self.close(target)
            elif self.mask(target):
                try:
                    self.run(action[2])
                finally:
                    self.unmask(target)
            else:
                self.log.append(("masked", target, "closed"))

    def send(self, index: int, vector: int) -> str:
        raise NotImplementedError

    def close(self, index: int) -> None:
        raise NotImplementedError

    def mask(self, index: int) -> bool:
        """Enter a masked section; False if the receiver is closed."""
        raise NotImplementedError

    def unmask(self, index: int) -> None:
        raise NotImplementedError


class RealWorld(World):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.receivers: list[uintr_loop.Receiver] = []
        self.senders: dict[tuple[int, int], uintr_loop.Sender] = {}
        self.masks: list[list[Any]] = []
        self.active: list[bool] = []

    def new_receiver(self) -> None:
        index = len(self.receivers)
        inner = self.handler_for(index)

        def handler(vector: int) -> None:
            assert not self.active[index], "handlers of one receiver nested"
            self.active[index] = True
            try:
                inner(vector)
            finally:
                self.active[index] = False

        self.programs.append(deque())
        self.masks.append([])
        self.active.append(False)
        self.receivers.append(uintr_loop.Receiver(handler, loop=self.loop))

    def send(self, index: int, vector: int) -> str:
        try:
            sender = self.senders.get((index, vector))
            if sender is None:
                sender = uintr_loop.Sender(self.receivers[index].vector_fd(vector))
                self.senders[index, vector] = sender
            sender.send()
        except uintr_loop.ReceiverClosedError:
            return "closed"
        return "ok"

    def close(self, index: int) -> None:
        self.receivers[index].close()

    def mask(self, index: int) -> bool:
        try:
            section = self.receivers[index].masked()
        except uintr_loop.ReceiverClosedError:
            return False
        section.__enter__()
        self.masks[index].append(section)
        return True

    def unmask(self, index: int) -> None:
        self.masks[index].pop().__exit__(None, None, None)

    def figures(self, index: int) -> Figures:
        return Figures.of(self.receivers[index].statistics())


class ModelWorld(World):
    def __init__(self) -> None:
        super().__init__()
        self.loop = ReferenceLoop()
        self.receivers: list[Any] = []

    def new_receiver(self) -> None:
        self.programs.append(deque())
        self.receivers.append(self.loop.new_receiver(self.handler_for(len(self.receivers))))

    def send(self, index: int, vector: int) -> str:
        r = self.receivers[index]
        try:
            if vector not in r.senders:
                r.open_sender(vector)
            r.send(vector)
        except ReferenceClosedError:
            return "closed"
        return "ok"

    def close(self, index: int) -> None:
        self.receivers[index].close()

    def mask(self, index: int) -> bool:
        try:
            self.receivers[index].mask()
        except ReferenceClosedError:
            return False
        return True

    def unmask(self, index: int) -> None:
        self.receivers[index].unmask()


class ReceiverMachine(RuleBasedStateMachine):
    """Receivers on a real loop, stepped between iterations, against the model."""

    base = "asyncio"

    def __init__(self) -> None:
        super().__init__()
        self.loop = uintr_loop.new_event_loop(base=self.base)
        self.errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda loop, context: self.errors.append(context))
        self.real = RealWorld(self.loop)
        self.model = ModelWorld()
        self.new_receiver()

    def teardown(self) -> None:
        self.loop.close()
        del self.real
        gc.collect()

    def pick(self, i: int) -> int:
        return i % len(self.real.receivers)

    @precondition(lambda self: len(self.real.receivers) < MAX_RECEIVERS)
    @rule()
    def new_receiver(self) -> None:
        self.real.new_receiver()
        self.model.new_receiver()

    @rule(i=st.integers(0, MAX_RECEIVERS - 1), vector=machine_vectors)
    def send(self, i: int, vector: int) -> None:
        i = self.pick(i)
        assert self.real.send(i, vector) == self.model.send(i, vector)

    @rule(i=st.integers(0, MAX_RECEIVERS - 1), vs=st.lists(machine_vectors, min_size=2, max_size=6))
    def send_burst(self, i: int, vs: list[int]) -> None:
        """Several vectors to one receiver before the loop runs: one batch."""
        i = self.pick(i)
        assert [self.real.send(i, v) for v in vs] == [self.model.send(i, v) for v in vs]

    @rule(i=st.integers(0, MAX_RECEIVERS - 1), program=programs)
    def script(self, i: int, program: list[Any]) -> None:
        """The next delivery to receiver i runs ``program`` inside its handler."""
        i = self.pick(i)
        self.real.programs[i].append(program)
        self.model.programs[i].append(program)

    @rule(i=st.integers(0, MAX_RECEIVERS - 1))
    def mask(self, i: int) -> None:
        i = self.pick(i)
        assert self.real.mask(i) == self.model.mask(i)

    @precondition(lambda self: any(self.real.masks))
    @rule(i=st.integers(0, MAX_RECEIVERS - 1))
    def unmask(self, i: int) -> None:
        masked = [j for j, stack in enumerate(self.real.masks) if stack]
        j = masked[i % len(masked)]
        self.real.unmask(j)          # the last unmask delivers at once (STUI)
        self.model.unmask(j)

    @rule(i=st.integers(0, MAX_RECEIVERS - 1), vs=st.lists(machine_vectors, min_size=1, max_size=4))
    def masked_burst(self, i: int, vs: list[int]) -> None:
        """Mask, send, let the loop recognise them into UIRR, unmask: what is
        pending is delivered by the unmask itself (STUI), not by the loop."""
        i = self.pick(i)
        entered = self.real.mask(i)
        assert entered == self.model.mask(i)
        assert [self.real.send(i, v) for v in vs] == [self.model.send(i, v) for v in vs]
        self.settle()
        self.same_outcome()
        if entered:
            self.real.unmask(i)
            self.model.unmask(i)

    @rule(i=st.integers(0, MAX_RECEIVERS - 1))
    def close(self, i: int) -> None:
        i = self.pick(i)
        self.real.close(i)
        self.model.close(i)

    @rule()
    def about_to_block(self) -> None:
        """The loop clears SN on its UPID as before a blocking select: sends
        now notify (eventfd) instead of being suppressed."""
        assert self.loop._uintr_port.restore() == self.model.loop.about_to_block()  # type: ignore[attr-defined]

    @rule()
    def settle(self) -> None:
        """Run the loop until it is quiet: the model says how many handler
        calls that takes; the loop gets a bounded number of iterations to make
        them, and two more to show it makes no others."""
        self.model.loop.settle()
        wanted = len(self.model.log)
        for _ in range(100):
            if len(self.real.log) >= wanted:
                break
            self.loop.run_until_complete(asyncio.sleep(0))
        for _ in range(2):
            self.loop.run_until_complete(asyncio.sleep(0))

    @invariant()
    def same_outcome(self) -> None:
        assert self.errors == []
        assert self.real.log == self.model.log
        for i in range(len(self.real.receivers)):
            assert self.real.receivers[i].closed == self.model.receivers[i].closed
            assert self.real.figures(i) == self.model.receivers[i].figures(), f"receiver {i}"
        assert Figures.of(self.loop.statistics()) == self.model.loop.figures()
        assert repair_count(self.loop) == 0


class ReceiverMachineUV(ReceiverMachine):
    base = "uvloop"


TestReceiverMachineAsyncioBase = ReceiverMachine.TestCase
TestReceiverMachineAsyncioBase.settings = MACHINE_SETTINGS
TestReceiverMachineUvloopBase = ReceiverMachineUV.TestCase
TestReceiverMachineUvloopBase.settings = MACHINE_SETTINGS


# -- real threads: the outcome must be one the model allows -------------------

CODE_NAMES = {POST_NOTIFY: "notify", POST_COALESCED: "coalesced", POST_SUPPRESSED: "suppressed", POST_SHUTDOWN: "refused"}
cell_ops = st.sampled_from(["recognise", "pending", "suppress", "restore", "restore", "recognise"])


@settings(max_examples=50, deadline=None, database=None)
@given(
    posts=st.lists(st.lists(vectors, min_size=1, max_size=3000), min_size=2, max_size=3),
    ops=st.lists(cell_ops, min_size=1, max_size=12),
    shutdown=st.booleans(),
)
def test_cell_with_racing_senders(posts: list[list[int]], ops: list[str], shutdown: bool) -> None:
    """Sender threads post (GIL released) while this thread cycles through
    recognise/pending/suppress/restore: counters add up, every posted vector
    is recognised, every notification is seen exactly once, and a receiver
    that restored without being told of a post is not left without one."""
    cell = UpidCell(0, 0)
    start = threading.Barrier(len(posts) + 1)
    codes: list[list[int]] = [[] for _ in posts]

    def sender(k: int) -> None:
        start.wait()
        codes[k] = cell.post_all(posts[k])

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(len(posts))]
    for t in threads:
        t.start()
    trace: list[tuple[str, Any]] = []
    start.wait()
    cycles = 0
    while any(t.is_alive() for t in threads) and cycles < 2000:
        for op in ops:
            trace.append((op, getattr(cell, op)()))
        cycles += 1
        if shutdown and cycles == 3:
            cell.shutdown()
            trace.append(("shutdown", None))
    for t in threads:
        t.join(HANG_GUARD)
        assert not t.is_alive()
    quiet = (cell.on, cell.sn, cell.shut, cell.pir)
    event(f"main-thread cycles while senders ran: {min(cycles, 10)}{'+' if cycles >= 10 else ''}")
    trace.append(("recognise", cell.recognise()))

    made = Counter(CODE_NAMES[c] for k in codes for c in k)
    n, c, s, r = cell.counters()
    assert (n, c, s, r) == (made["notify"], made["coalesced"], made["suppressed"], made["refused"])
    assert sum(made.values()) == sum(map(len, posts))
    # P comes first, even for a refused post: every posted vector is recognised
    taken = [res[0] for op, res in trace if op == "recognise"]
    union = 0
    for bits in taken:
        union |= bits
    assert union == sum(1 << v for v in {v for p in posts for v in p})
    per_vector = Counter(v for bits in taken for v in range(64) if bits >> v & 1)
    posted_per_vector = Counter(v for p in posts for v in p)
    assert all(per_vector[v] <= posted_per_vector[v] for v in per_vector)
    # ON goes 0->1 only in a notifying post and 1->0 only in C: exactly one
    # recognise saw each notification (at most one outstanding, none lost)
    assert sum(res[1] for op, res in trace if op == "recognise") == n
    # No lost wakeup: once the senders are done, bits left with SN and ON
    # clear must have been reported by a restore after the last recognise.
    on, sn, shut, pir = quiet
    if pir and not on and not sn and not shut:
        last_restore = max(i for i, (op, _) in enumerate(trace[:-1]) if op == "restore")
        last_recognise = max((i for i, (op, _) in enumerate(trace[:-1]) if op == "recognise"), default=-1)
        assert trace[last_restore][1] is True and last_restore > last_recognise, (
            "posts left in PIR with SN and ON clear, and the last restore said nothing was pending"
        )


@settings(max_examples=8, deadline=None, database=None)
@given(
    vs=st.lists(st.integers(0, 63), min_size=1, max_size=2, unique=True),
    max_pause=st.sampled_from([16, 128, 512, 2048]),
    seed=st.integers(1, 2**63),
)
def test_cell_no_lost_wakeup_with_paced_senders(vs: list[int], max_pause: int, seed: int) -> None:
    """The lost-wakeup hunt. Each sender posts again only once its last post
    was taken, so each post is for a while the last one; this thread runs the
    loop's cycle (suppress, recognise, restore, and block until ON when
    restore says nothing is pending). A post that returned, whose bit is in
    PIR while ON is clear and this thread is blocked, was lost: nothing will
    ever notify it. The check is a state, not a timeout."""
    cell = UpidCell(0, 0)
    rounds = 500
    posters = [PacedPoster(cell, v, rounds, max_pause, seed + k) for k, v in enumerate(vs)]
    threads = [threading.Thread(target=p.run) for p in posters]
    for t in threads:
        t.start()
    lost: list[int] = []
    blocked = 0
    try:
        while not lost and any(t.is_alive() for t in threads):
            cell.suppress()                         # running
            cell.recognise()
            if cell.restore():                      # posts pending: do not block
                continue
            blocked += 1
            while not cell.on:                      # blocked: until notified
                pir = cell.pir
                stranded = [p.vector for p in posters if pir >> p.vector & 1 and not p.in_post]
                if stranded and not cell.on:
                    lost = stranded
                    break
                if not any(t.is_alive() for t in threads):
                    break
    finally:
        for p in posters:
            p.stop()
        for t in threads:
            t.join(HANG_GUARD)
    assert not lost, (
        f"lost wakeup: the post of vector(s) {lost} returned, its bit is in PIR, "
        f"ON is clear and the receiver blocked after restore() said nothing was pending "
        f"(status {cell.status:#x}, PIR {cell.pir:#x}, after {blocked} blocks)"
    )
    assert [p.done for p in posters] == [rounds] * len(posters)
    made = [sum(col) for col in zip(*(p.codes() for p in posters))]
    assert tuple(made) == cell.counters() and made[3] == 0
    event(f"blocked {'at least 100' if blocked >= 100 else 'under 100'} times")


loop_ops = st.sampled_from(["iterate", "iterate", "block", "mask", "unmask", "unmask", "close"])


@pytest.mark.parametrize("base", ["asyncio", "uvloop"])
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plans=st.lists(
        st.lists(st.tuples(st.integers(0, 2), machine_vectors), min_size=1, max_size=60), min_size=1, max_size=3
    ),
    native=st.lists(st.tuples(st.integers(0, 2), machine_vectors, st.integers(1, 3000)), max_size=2),
    ops=st.lists(st.tuples(loop_ops, st.integers(0, 2)), min_size=1, max_size=10),
)
def test_loop_with_racing_senders(base: str, plans: list[list[tuple[int, int]]],
                                  native: list[tuple[int, int, int]], ops: list[tuple[str, int]]) -> None:
    """Python sender threads and native pthreads send into a running loop
    while its own thread masks, unmasks, closes receivers, iterates and
    blocks: the figures add up to the sends made, everything sent to an open
    receiver is delivered, nothing after close, never nested, each delivery
    batch highest first."""
    loop = uintr_loop.new_event_loop(base=base)
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda lp, context: errors.append(context))
    batch: contextvars.ContextVar[object | None] = contextvars.ContextVar("batch", default=None)
    calls: list[list[tuple[object, int]]] = [[], [], []]
    active = [False, False, False]
    receivers: list[uintr_loop.Receiver] = []
    wanted: list[set[int]] = [set(), set(), set()]
    all_seen = asyncio.Event()

    def make_handler(i: int) -> Callable[[int], None]:
        def handler(vector: int) -> None:
            assert not active[i], "nested"
            assert not receivers[i].closed, "delivered after close"
            key = batch.get()
            if key is None:            # the first call of this delivery pass
                key = object()
                batch.set(key)
            calls[i].append((key, vector))
            if all(w <= {v for _, v in calls[j]} for j, w in enumerate(wanted) if not receivers[j].closed):
                all_seen.set()

        return handler

    receivers.extend(uintr_loop.Receiver(make_handler(i), loop=loop) for i in range(3))
    senders = {(i, v): uintr_loop.Sender(receivers[i].vector_fd(v))
               for plan in plans for i, v in plan}
    natives = [(i, v, n, uintr_loop.Sender(receivers[i].vector_fd(v))) for i, v, n in native]
    results: list[list[tuple[int, int, bool]]] = [[] for _ in plans]
    start = threading.Barrier(len(plans) + 1)

    def python_sender(k: int) -> None:
        start.wait()
        for i, v in plans[k]:
            try:
                senders[i, v].send()
                results[k].append((i, v, True))
            except uintr_loop.ReceiverClosedError:
                results[k].append((i, v, False))

    async def main() -> list[tuple[int, int, int, tuple[int, int]]]:
        threads = [threading.Thread(target=python_sender, args=(k,)) for k in range(len(plans))]
        for t in threads:
            t.start()
        jobs = [(i, v, n, NativeSender(s, n)) for i, v, n, s in natives]
        masks: list[list[Any]] = [[], [], []]
        start.wait()
        for _ in range(50):
            for op, i in ops:
                if op == "iterate":
                    await asyncio.sleep(0)
                elif op == "block":
                    await asyncio.sleep(0.0005)      # lets the loop block in select/poll
                elif op == "mask" and not receivers[i].closed:   # closed: refused
                    section = receivers[i].masked()
                    section.__enter__()
                    masks[i].append(section)
                elif op == "unmask" and masks[i]:
                    batch.set(None)                  # STUI delivers here: a new batch
                    masks[i].pop().__exit__(None, None, None)
                elif op == "close":
                    receivers[i].close()
            if not any(t.is_alive() for t in threads):
                break
        for t in threads:
            await asyncio.to_thread(t.join, HANG_GUARD)
        done = [(i, v, n, await asyncio.to_thread(job.join)) for i, v, n, job in jobs]
        for i, stack in enumerate(masks):
            while stack:
                batch.set(None)
                stack.pop().__exit__(None, None, None)
        # everything sent to a receiver still open must arrive, with no help
        for k in range(len(plans)):
            for i, v, ok in results[k]:
                if ok and not receivers[i].closed:
                    wanted[i].add(v)
        for i, v, n, (sent, _err) in done:
            if sent and not receivers[i].closed:
                wanted[i].add(v)
        all_seen.clear()
        if all(w <= {v for _, v in calls[j]} for j, w in enumerate(wanted) if not receivers[j].closed):
            all_seen.set()
        await guarded(all_seen.wait())
        return done

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)          # Python senders interleave with the loop
    try:
        done = loop.run_until_complete(main())
    finally:
        sys.setswitchinterval(old_interval)
    try:
        assert errors == []
        ok_sends = Counter((i, v) for res in results for i, v, ok in res if ok)
        refused = Counter(i for res in results for i, _v, ok in res if not ok)
        for i, v, n, (sent, err) in done:
            ok_sends[i, v] += sent
            if err:
                assert err == POST_SHUTDOWN and sent < n and receivers[i].closed
                refused[i] += 1
            else:
                assert sent == n
        batches: list[list[int]] = []
        for i, r in enumerate(receivers):
            stats = r.statistics()
            assert stats.posted == stats.notifications + stats.coalesced + stats.suppressed
            assert stats.posted == sum(c for (j, _), c in ok_sends.items() if j == i), f"receiver {i}"
            assert stats.refused == refused[i]
            assert stats.suppressed == 0            # a receiver's SN is never set
            assert stats.delivered == len(calls[i])
            assert stats.spurious <= stats.notifications
            got = Counter(v for _, v in calls[i])
            assert all(got[v] <= ok_sends[i, v] for v in got), "delivered more often than sent"
            assert wanted[i] <= set(got)
            # one delivery pass takes UIRR highest first
            by_batch: dict[object, list[int]] = {}
            for key, v in calls[i]:
                by_batch.setdefault(key, []).append(v)
            batches.extend(by_batch.values())
            for vs in by_batch.values():
                assert vs == sorted(vs, reverse=True) and len(set(vs)) == len(vs), vs
        lstats = loop.statistics()
        event(f"loop notifications: {'some' if lstats.notifications else 'none'}")
        event(f"largest batch: {min(3, max((len(b) for b in batches), default=0))}+")
        event(f"receivers closed: {sum(r.closed for r in receivers)}")
        assert lstats.posted == lstats.notifications + lstats.coalesced + lstats.suppressed
        assert lstats.spurious <= lstats.notifications
    finally:
        loop.close()
