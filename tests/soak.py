"""Stress and soak: every kind of sender against every receiver state, every post counted.

One driver, used two ways:

    python tests/soak.py --seconds 60            # make soak: 60 s on each base, a table of counts
    run_soak(base, seconds)                      # tests/test_soak.py: a few seconds inside make test

Senders (each publishes a sequence number in memory *before* each post):
  thread   Python threads: ``Sender.send`` to both receivers and ``call_soon_threadsafe``
  process  other interpreters that open ``Sender(fd)`` from inherited vector fds
  native   ``NativeSender`` pthreads (no GIL), a fresh burst each storm
  pingpong ``StampSender`` pthreads (no GIL): one post in flight, acknowledged by the handler
Python threads and processes run the same code (``sender_main``) and random pauses.

Receivers: a loop receiver, and a task receiver (``Receiver.for_task``). While senders
storm, the loop moves in shuffled rounds among busy (spinning: SN set), blocked
(sleeping in its selector), blocked on a post (only a guard and, at most, a receiver
task's timer of <= 3 ms), masked (``masked()`` across awaits), stalled (``time.sleep``
on the loop thread) and yielding; the receiver task meanwhile is switched out
(suppressed), masked, spinning, waiting or yielding.

Between storms comes a *solo*: every sender pauses but one, which posts and waits for
the acknowledgement, round after round (ping-pong). The receiver task sits in
``wait()`` and the loop waits for the solo's end: once a phase timer of <= 3 ms has run
out, no timer is pending but a guard, so a lost wakeup can hide nowhere. The guard
expires and the run fails with its state dumped (counts, statistics, and the UPID
status bits and PIR read from the shared table). The repair, which completes
posts of killed senders, is turned off for the run so that it cannot hide one either
(no sender is killed here; ``repair_count`` must stay 0).

At the end every sender has stopped and every final post must have been observed by the
handler, every ``call_soon_threadsafe`` callback must have run exactly once and in order,
and each receiver's ``statistics().posted`` (= notifications + coalesced + suppressed)
must equal what its senders counted, exactly.
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import dataclasses
import itertools
import json
import mmap
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:          # as a script, before the package is installed
    sys.path.insert(0, str(REPO_ROOT))

import uintr_loop  # noqa: E402
from uintr_loop import _core  # noqa: E402
from _testcore._state import repair_count  # noqa: E402

GUARD = 20.0
"""Default seconds a ping-pong round, a blocked phase or the final drain may take before
it counts as a lost wakeup (far above anything seen; the machine is shared and noisy)."""

# -- the control page, shared by the driver, its threads and its sender processes --------
# One page of uint64 words. Aligned 8-byte loads and stores are atomic on x86-64, and TSO
# keeps a store before the locked instructions of the post that follows it: a handler that
# takes the post's PIR bit reads the sequence number published before it.

STORM, SOLO, STOP = 0, 1, 2
W_MODE, W_SOLO, W_ROUNDS, W_GEN, W_SOLO_DONE, W_GUARD_MS = range(6)
SENDER_BASE, SENDER_WORDS, MAX_SENDERS = 16, 8, 16
S_READY, S_ERROR, S_CST_SENT, S_CST_RAN, S_ROUNDS = range(5)
SLOT_BASE, SLOT_WORDS, MAX_SLOTS = SENDER_BASE + SENDER_WORDS * MAX_SENDERS, 4, 32
P_PUBLISHED, P_SENT, P_ACKED = range(3)
LOOP_PHASES = ("busy", "blocked", "blocked on a post", "masked", "stalled", "yield")
ERR_ACK_TIMEOUT, ERR_SEND = 1, 2


class Control:
    """The control page: a memfd mapped shared, passed to sender processes by fd."""

    def __init__(self, fd: int | None = None) -> None:
        self.owner = fd is None
        if fd is None:
            fd = os.memfd_create("uintr-soak-control", os.MFD_CLOEXEC)
            os.ftruncate(fd, mmap.PAGESIZE)
        self.fd = fd
        self._map = mmap.mmap(fd, mmap.PAGESIZE)
        self.w = (ctypes.c_uint64 * (mmap.PAGESIZE // 8)).from_buffer(self._map)

    def sender(self, sid: int, word: int) -> int:
        return int(self.w[SENDER_BASE + sid * SENDER_WORDS + word])

    def set_sender(self, sid: int, word: int, value: int) -> None:
        self.w[SENDER_BASE + sid * SENDER_WORDS + word] = value

    def slot(self, index: int, word: int) -> int:
        return int(self.w[SLOT_BASE + index * SLOT_WORDS + word])

    def set_slot(self, index: int, word: int, value: int) -> None:
        self.w[SLOT_BASE + index * SLOT_WORDS + word] = value

    def close(self) -> None:
        del self.w
        self._map.close()
        if self.owner:
            os.close(self.fd)


# -- the sender side: the same code in threads and in processes -------------------------

class SenderFailed(Exception):
    """A sender gave up (an acknowledgement never came, or a send raised)."""


Target = tuple[int, Callable[[], object]]     # (slot index, send)


def _pause(rng: random.Random) -> None:
    r = rng.random()
    if r < 0.02:
        time.sleep(rng.choice((0.0002, 0.001, 0.003)))
    elif r < 0.15:
        time.sleep(0)                          # give up the GIL / the core


def _post(ctl: Control, sid: int, target: Target) -> int:
    index, send = target
    seq = ctl.slot(index, P_PUBLISHED) + 1
    ctl.set_slot(index, P_PUBLISHED, seq)     # before the post: what its handler must see
    try:
        send()
    except Exception as exc:
        ctl.set_sender(sid, S_ERROR, ERR_SEND)
        raise SenderFailed(f"sender {sid}: send to slot {index} raised {exc!r}") from exc
    ctl.set_slot(index, P_SENT, ctl.slot(index, P_SENT) + 1)
    return seq


def _await_ack(ctl: Control, sid: int, ready: Callable[[], bool], what: str) -> None:
    guard = ctl.w[W_GUARD_MS] / 1000
    deadline = time.monotonic() + guard
    while not ready():
        if time.monotonic() > deadline or ctl.w[W_MODE] == STOP:
            ctl.set_sender(sid, S_ERROR, ERR_ACK_TIMEOUT)
            raise SenderFailed(f"sender {sid}: no acknowledgement of {what} within {guard}s")
        time.sleep(0.00005)


def _ping_pong(ctl: Control, sid: int, targets: list[Target], rng: random.Random,
               cst: Callable[[int], None] | None) -> None:
    for _ in range(ctl.w[W_ROUNDS]):
        if cst is not None and rng.random() < 0.3:
            n = ctl.sender(sid, S_CST_SENT) + 1
            cst(n)
            ctl.set_sender(sid, S_CST_SENT, n)
            _await_ack(ctl, sid, lambda: ctl.sender(sid, S_CST_RAN) >= n,
                       f"call_soon_threadsafe #{n}")
        else:
            target = rng.choice(targets)
            seq = _post(ctl, sid, target)
            _await_ack(ctl, sid, lambda: ctl.slot(target[0], P_ACKED) >= seq,
                       f"post #{seq} to slot {target[0]}")
        ctl.set_sender(sid, S_ROUNDS, ctl.sender(sid, S_ROUNDS) + 1)
        if rng.random() < 0.2:
            time.sleep(rng.choice((0.0001, 0.001)))


def sender_main(ctl: Control, sid: int, targets: list[Target], seed: int,
                cst: Callable[[int], None] | None = None) -> None:
    """Storm in random bursts with random pauses while the mode is STORM; when this
    sender is the SOLO, run the requested ping-pong rounds, then a last post to say so;
    otherwise stay quiet. Returns at STOP. ``cst(n)`` posts call_soon_threadsafe #n."""
    rng = random.Random(seed)
    ctl.set_sender(sid, S_READY, 1)
    done_gen = 0
    while True:
        mode = ctl.w[W_MODE]
        if mode == STOP:
            return
        if mode == SOLO:
            gen = int(ctl.w[W_GEN])
            if ctl.w[W_SOLO] == sid and gen != done_gen:
                done_gen = gen
                _ping_pong(ctl, sid, targets, rng, cst)
                ctl.w[W_SOLO_DONE] = gen          # then one more post carries the news
                _post(ctl, sid, targets[0])
            else:
                time.sleep(0.0005)
            continue
        for _ in range(rng.randint(1, 64)):
            if ctl.w[W_MODE] != STORM:
                break
            if cst is not None and rng.random() < 0.3:
                n = ctl.sender(sid, S_CST_SENT) + 1
                cst(n)
                ctl.set_sender(sid, S_CST_SENT, n)
            else:
                _post(ctl, sid, rng.choice(targets))
            _pause(rng)


def child_main(args: dict[str, Any]) -> int:
    """A sender process: Sender(fd) from the inherited vector fds, then sender_main."""
    ctl = Control(args["ctl"])
    targets: list[Target] = []
    senders = []
    for index, fd in args["targets"]:
        sender = uintr_loop.Sender(fd)
        os.close(fd)                             # registered: the fd is not needed any more
        senders.append(sender)
        targets.append((index, sender.send))
    try:
        sender_main(ctl, args["sid"], targets, args["seed"])
    except SenderFailed as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    print(json.dumps({"sent": {i: ctl.slot(i, P_SENT) for i, _ in targets}}), flush=True)
    return 0


# -- the receiver side -------------------------------------------------------------------

class SoakFailure(AssertionError):
    """A post lost or duplicated, a wakeup lost, a count that does not add up."""


@dataclasses.dataclass
class Slot:
    """One (receiver, vector) and the one sender that posts it."""

    kind: str                 # thread | process | native | pingpong
    receiver: str             # loop | task
    vector: int
    index: int                # in the control page (thread, process)
    sid: int = -1
    seen: int = 0             # the highest sequence number a delivery observed
    deliveries: int = 0       # handler calls for this vector
    base: int = 0             # native, pingpong: posts of finished jobs
    job: Any = None           # native, pingpong: the running NativeSender / StampSender
    acks: int = 0             # pingpong: acknowledgements given to the running job
    joining: Any = None       # native, pingpong: the future of the running job's join
    sender: Any = None        # native, pingpong: the Sender the jobs use


@dataclasses.dataclass
class SoakConfig:
    base: str = "uvloop"
    seconds: float = 5.0
    seed: int | None = None
    threads: int = 3
    processes: int = 3
    rounds: int = 12          # ping-pong rounds per solo
    switch_interval: float = 1e-4
    guard: float = GUARD
    busy_poll: float = 0      # microseconds the loop spins on its PIR before it blocks
    fault: str | None = None  # tests of the driver: "lost-wakeup", "dropped-post", "ignore-pending"


class Soak:
    """One run on one base: set-up, storms and solos, the drain, the exact accounting."""

    def __init__(self, config: SoakConfig) -> None:
        self.cfg = config
        if config.threads + config.processes > (MAX_SLOTS - 4) // 2:
            raise ValueError(f"at most {(MAX_SLOTS - 4) // 2} thread and process senders in all")
        self.seed = config.seed if config.seed is not None else random.randrange(2**32)
        self.rng = random.Random(self.seed)
        self.phases = _shuffled(self.rng, LOOP_PHASES)
        self.ctl = Control()
        self.ctl.w[W_GUARD_MS] = int(config.guard * 1000)
        self.slots: list[Slot] = []
        self.by_vector: dict[tuple[str, int], Slot] = {}
        self.cst_next: list[int] = [0] * MAX_SENDERS
        self.problems: list[str] = []
        self.loop_phases: Counter[str] = Counter()
        self.task_phases: Counter[str] = Counter()
        self.solos: Counter[str] = Counter()
        self.storms = 0
        self.native_bursts = 0
        self.phase = "setup"
        self.task_phase = "setup"
        self.finishing = False
        self.procs: list[subprocess.Popen[str]] = []
        self.threads: list[threading.Thread] = []
        self.thread_errors: list[str] = []
        self.table_map: mmap.mmap | None = None
        self.blocks: dict[str, int] = {}

    # ---- bookkeeping called on the loop thread -----------------------------------------

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def published(self, slot: Slot) -> int:
        if slot.kind in ("thread", "process"):
            return self.ctl.slot(slot.index, P_PUBLISHED)
        if slot.kind == "native":
            return slot.base + (slot.job.published if slot.job is not None else 0)
        return slot.base + slot.acks           # pingpong: one in flight, each acknowledged

    def sent(self, slot: Slot) -> int:
        if slot.kind in ("thread", "process"):
            return self.ctl.slot(slot.index, P_SENT)
        return slot.base

    def on_vector(self, receiver: str, vector: int) -> None:
        slot = self.by_vector[(receiver, vector)]
        slot.deliveries += 1
        if slot.kind == "pingpong":
            if slot.job is None:
                self.problem(f"{receiver} vector {vector}: a delivery with no ping in flight")
            else:
                slot.acks += 1
                slot.job.ack()
                if self.phase == "solo" and slot.acks == self.cfg.rounds:
                    self.solo_done.set()
        else:
            seq = self.published(slot)
            if seq < slot.seen:
                self.problem(f"{receiver} vector {vector}: sequence went back {slot.seen} -> {seq}")
            slot.seen = seq
            if slot.kind in ("thread", "process"):
                self.ctl.set_slot(slot.index, P_ACKED, seq)
        if receiver == "loop":
            self.loop_delivery.set()
        if (self.ctl.w[W_MODE] == SOLO and self.ctl.w[W_SOLO_DONE] == self.ctl.w[W_GEN]
                and self.phase == "solo"):
            self.solo_done.set()
        self.check_drained()

    def on_cst(self, sid: int, n: int) -> None:
        if n != self.cst_next[sid] + 1:
            self.problem(f"thread {sid}: call_soon_threadsafe #{n} ran after #{self.cst_next[sid]}")
        self.cst_next[sid] = n
        self.ctl.set_sender(sid, S_CST_RAN, n)
        self.check_drained()

    def check_drained(self) -> None:
        if not self.finishing or self.drained.is_set():
            return
        for slot in self.slots:
            if slot.kind != "pingpong" and slot.seen != self.published(slot):
                return
        for sid in range(self.cfg.threads):
            if self.cst_next[sid] != self.ctl.sender(sid, S_CST_SENT):
                return
        self.drained.set()

    # ---- state dump ----------------------------------------------------------------------

    def open_table(self, vfd: Any, name: str) -> None:
        """Peek a vector fd's capsule (as Sender does) to map the UPID table read-only,
        so a failure can show the status bits and PIR of the loop's and this block."""
        sock = socket.socket(fileno=os.dup(vfd.fileno()))
        try:
            data, anc, _, _ = sock.recvmsg(64, socket.CMSG_SPACE(2 * 4),
                                           socket.MSG_PEEK | socket.MSG_CMSG_CLOEXEC)
        finally:
            sock.close()
        fds = []
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(struct.unpack(f"{len(payload) // 4}i", payload[: len(payload) // 4 * 4]))
        try:
            _magic, _ver, _size, index, _vector = struct.unpack_from("<IHHII", data)
            self.blocks[name] = index
            if self.table_map is None and fds:
                self.table_map = mmap.mmap(fds[0], mmap.PAGESIZE, prot=mmap.PROT_READ)
        finally:
            for fd in fds:
                os.close(fd)

    def upid(self, index: int) -> str:
        if self.table_map is None:
            return "unreachable"
        status, pir = struct.unpack_from("<QQ", self.table_map, index * 64)
        bits = [name for bit, name in ((0, "ON"), (1, "SN"), (2, "SHUT")) if status >> bit & 1]
        return f"status={status:#x} ({'|'.join(bits) or '-'}) PIR={pir:#018x}"

    def dump(self) -> str:
        lines = [f"base={self.cfg.base} seed={self.seed} loop phase={self.phase} "
                 f"task phase={self.task_phase} mode={self.ctl.w[W_MODE]} "
                 f"solo={self.ctl.w[W_SOLO]} gen={self.ctl.w[W_GEN]} "
                 f"solo_done={self.ctl.w[W_SOLO_DONE]}"]
        for slot in self.slots:
            lines.append(
                f"  {slot.kind:8} {slot.receiver:4} v{slot.vector:<2} published={self.published(slot)} "
                f"sent={self.sent(slot)} seen={slot.seen} deliveries={slot.deliveries}"
                + (f" acked={self.ctl.slot(slot.index, P_ACKED)}" if slot.kind in ("thread", "process") else "")
                + (f" acks={slot.acks} job={'running' if slot.job else '-'}" if slot.kind == "pingpong" else ""))
        for sid in range(self.cfg.threads + self.cfg.processes):
            lines.append(f"  sender {sid}: ready={self.ctl.sender(sid, S_READY)} "
                         f"error={self.ctl.sender(sid, S_ERROR)} rounds={self.ctl.sender(sid, S_ROUNDS)} "
                         f"cst sent={self.ctl.sender(sid, S_CST_SENT)} ran={self.ctl.sender(sid, S_CST_RAN)}")
        for name, r in (("loop receiver", getattr(self, "r_loop", None)),
                        ("task receiver", getattr(self, "r_task", None))):
            if r is not None:
                lines.append(f"  {name}: {r.statistics()}")
        lines.append(f"  loop: {self.loop.statistics()}")
        lines.append(f"  UPID block 0 (loop): {self.upid(0)}")
        for name, index in self.blocks.items():
            lines.append(f"  UPID block {index} ({name} receiver): {self.upid(index)}")
        lines.extend(f"  problem: {p}" for p in self.problems)
        return "\n".join(lines)

    def fail(self, what: str) -> SoakFailure:
        return SoakFailure(f"{what}\n{self.dump()}")

    async def bounded(self, aw: Any, what: str, timeout: float | None = None) -> Any:
        """Await with only a guard timer: a guard that fires is a lost wakeup."""
        timeout = self.cfg.guard if timeout is None else timeout
        try:
            return await asyncio.wait_for(aw, timeout)
        except asyncio.TimeoutError:
            raise self.fail(f"lost wakeup? {what} did not complete within {timeout}s") from None

    def check_senders(self) -> None:
        """Fail as soon as a sender gave up or a handler saw something wrong."""
        errors = [sid for sid in range(self.cfg.threads + self.cfg.processes)
                  if self.ctl.sender(sid, S_ERROR)]
        if errors or self.thread_errors or self.problems:
            raise self.fail(f"senders {errors} gave up (see their error words); "
                            f"{self.thread_errors}")

    async def unstick(self, slot: Slot) -> None:
        """After a failure: acknowledge a ping-pong pthread until its join is done, so
        that no thread is left blocked on an acknowledgement that will not come."""
        if slot.job is None:
            return
        if slot.joining is None:
            slot.joining = asyncio.ensure_future(asyncio.to_thread(slot.job.join))
        while not slot.joining.done():
            if slot.kind == "pingpong":
                slot.job.ack()
            await asyncio.sleep(0.001)
        slot.job = slot.joining = None

    # ---- set-up -------------------------------------------------------------------------

    def add_slot(self, kind: str, receiver: Any, rname: str, vector: int, sid: int = -1) -> tuple[Slot, Any]:
        slot = Slot(kind, rname, vector, len(self.slots), sid)
        self.slots.append(slot)
        self.by_vector[(rname, vector)] = slot
        return slot, receiver.vector_fd(vector)

    async def receiver_task(self) -> None:
        """The task receiver: switched out, masked, spinning, waiting, by turns."""
        r = uintr_loop.Receiver.for_task(lambda v: self.on_vector("task", v))
        self.r_task = r
        self.task_ready.set()
        rng = random.Random(self.rng.random())
        phases = _shuffled(rng, ("switched out", "masked", "spin", "wait", "yield"))
        while True:
            if self.ctl.w[W_MODE] != STORM:
                # A solo or the end: SN stays clear while waiting, so a post wakes the loop.
                self.task_phase = "wait (solo)"
                await r.wait()
                continue
            phase = next(phases)
            self.task_phase = phase
            self.task_phases[phase] += 1
            if phase == "switched out":
                await asyncio.sleep(rng.uniform(0, 0.003))   # SN set: posts are suppressed
            elif phase == "masked":
                with r.masked():
                    _spin(rng.uniform(0, 0.0005))
                    await asyncio.sleep(rng.uniform(0, 0.002))
                    _spin(rng.uniform(0, 0.0005))
            elif phase == "spin":
                _spin(rng.uniform(0, 0.001))                  # running: SN clear
                await asyncio.sleep(0)
            elif phase == "wait":
                try:
                    await r.wait(timeout=rng.uniform(0, 0.003))
                except asyncio.TimeoutError:
                    pass
            else:
                for _ in range(rng.randint(1, 20)):
                    await asyncio.sleep(0)

    def start_threads(self, loop: asyncio.AbstractEventLoop, vfds: dict[int, list[tuple[int, Any]]]) -> None:
        for sid in range(self.cfg.threads):
            targets = [(index, uintr_loop.Sender(vfd).send) for index, vfd in vfds[sid]]
            cst_post = self.cst_poster(loop, sid)

            def run(sid: int = sid, targets: list[Target] = targets,
                    cst_post: Callable[[int], None] = cst_post, seed: int = self.rng.randrange(2**32)) -> None:
                try:
                    sender_main(self.ctl, sid, targets, seed, cst_post)
                except BaseException as exc:
                    self.thread_errors.append(f"thread {sid}: {exc!r}")
            if sid == 0 and self.cfg.fault in ("dropped-post", "lost-wakeup"):
                targets[0] = (targets[0][0], _faulty(vfds[sid][0][1], self.cfg.fault))
            thread = threading.Thread(target=run, name=f"soak-sender-{sid}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def cst_poster(self, loop: asyncio.AbstractEventLoop, sid: int) -> Callable[[int], None]:
        def post(n: int) -> None:
            loop.call_soon_threadsafe(self.on_cst, sid, n)
        return post

    def start_processes(self, vfds: dict[int, list[tuple[int, Any]]]) -> None:
        from _support import child_env

        for sid in range(self.cfg.threads, self.cfg.threads + self.cfg.processes):
            fds = [(index, vfd.fileno()) for index, vfd in vfds[sid]]
            args = {"sid": sid, "ctl": self.ctl.fd, "targets": fds, "seed": self.rng.randrange(2**32)}
            self.procs.append(subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(args)],
                pass_fds=(self.ctl.fd, *(fd for _, fd in fds)), env=child_env(),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))

    # ---- the run ------------------------------------------------------------------------

    async def main(self) -> dict[str, Any]:
        """The run; an injected "ignore-pending" fault is taken out again at the
        end, so the runner's own shutdown (the default executor's, whose worker
        wakes the loop with a post) runs on a sound loop."""
        try:
            return await self._main()
        finally:
            selector = getattr(asyncio.get_running_loop(), "_selector", None)
            port = getattr(selector, "_uintr_port", None)
            if isinstance(port, _IgnorePending):
                selector._uintr_port = port._port

    async def _main(self) -> dict[str, Any]:
        from uintr_loop._native import NativeSender, StampSender

        self.loop = loop = asyncio.get_running_loop()
        self.loop_delivery = asyncio.Event()
        self.solo_done = asyncio.Event()
        self.drained = asyncio.Event()
        self.task_ready = asyncio.Event()
        loop.set_exception_handler(lambda _l, ctx: self.problem(f"loop exception: {ctx.get('message')} "
                                                                 f"{ctx.get('exception')!r}"))
        if self.cfg.fault == "ignore-pending":
            selector = loop._selector            # type: ignore[attr-defined]
            selector._uintr_port = _IgnorePending(selector._uintr_port)
        self.r_loop = uintr_loop.Receiver(lambda v: self.on_vector("loop", v))
        task = asyncio.ensure_future(self.receiver_task())
        await self.task_ready.wait()
        receivers = (("loop", self.r_loop), ("task", self.r_task))

        # vectors 1..n: one per (sender, receiver); threads and processes post to both
        vfds: dict[int, list[tuple[int, Any]]] = {}
        vector = 1
        for sid in range(self.cfg.threads + self.cfg.processes):
            kind = "thread" if sid < self.cfg.threads else "process"
            for rname, r in receivers:
                slot, vfd = self.add_slot(kind, r, rname, vector, sid)
                vfds.setdefault(sid, []).append((slot.index, vfd))
            vector += 1
        natives = []
        for kind in ("native", "pingpong"):
            for rname, r in receivers:
                slot, vfd = self.add_slot(kind, r, rname, vector)
                slot.sender = uintr_loop.Sender(vfd)
                vfd.close()
                natives.append(slot)
            vector += 1
        for rname, r in receivers:
            self.open_table(vfds[0][0 if rname == "loop" else 1][1], rname)

        self.start_threads(loop, vfds)
        self.start_processes(vfds)
        try:
            # (interpreters starting on a loaded machine: not a wakeup, so a long bound)
            await self.bounded(self.all_ready(), "sender start-up", max(self.cfg.guard, 60.0))
            for pairs in vfds.values():
                for _, vfd in pairs:
                    vfd.close()          # every sender is registered: closing revokes nothing
            t0 = time.monotonic()
            end = t0 + self.cfg.seconds
            # interleaved, so that every kind has had a solo after three turns
            threads = [("sender", sid) for sid in range(self.cfg.threads)]
            procs = [("sender", sid) for sid in range(self.cfg.threads, self.cfg.threads + self.cfg.processes)]
            pingpongs = [("pingpong", i) for i in range(2)]
            solo_kinds = [group[i % len(group)] for i in range(2 * max(len(threads), len(procs)))
                          for group in (threads, procs, pingpongs) if group]
            turn = 0
            while time.monotonic() < end or turn < 3:
                await self.storm(natives, NativeSender, StampSender)
                await self.solo(solo_kinds[turn % len(solo_kinds)], natives, StampSender)
                turn += 1
            elapsed = time.monotonic() - t0
            await self.finish()
        except BaseException:
            self.ctl.w[W_MODE] = STOP
            for slot in natives:
                await self.unstick(slot)
            self.reap(kill=True)
            raise
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return self.verify(elapsed)

    async def all_ready(self) -> None:
        total = self.cfg.threads + self.cfg.processes
        while sum(self.ctl.sender(sid, S_READY) for sid in range(total)) < total:
            for proc in self.procs:
                if proc.poll() is not None:
                    _, err = proc.communicate()
                    raise self.fail(f"sender process exited at start-up ({proc.returncode}):\n{err[-2000:]}")
            await asyncio.sleep(0.01)

    async def storm(self, natives: list[Slot], NativeSender: Any, StampSender: Any) -> None:
        """Every sender at once, for a random while; the loop changes phase at random."""
        self.storms += 1
        self.phase = "storm"
        self.ctl.w[W_MODE] = STORM
        for slot in natives:
            slot.acks = 0
            if slot.kind == "native":
                slot.job = NativeSender(slot.sender, self.rng.randint(200, 5000),
                                        self.rng.choice((0, 20_000, 200_000)), self.rng.randint(1, 64))
                self.native_bursts += 1
            else:
                slot.job = StampSender(slot.sender, self.rng.randint(5, 60),
                                       self.rng.choice((0, 50_000, 300_000)))
        until = time.monotonic() + self.rng.uniform(0.05, 0.4)
        for n in itertools.count():
            if time.monotonic() >= until and n >= len(LOOP_PHASES):
                break
            self.check_senders()
            await self.loop_phase(next(self.phases))
        self.phase = "storm: joining native senders"
        for slot in natives:
            slot.joining = asyncio.ensure_future(asyncio.to_thread(slot.job.join))
            sent, err = await self.bounded(asyncio.shield(slot.joining), f"{slot.kind} burst")
            if err:
                raise self.fail(f"{slot.kind} sender on {slot.receiver}: error {err}")
            if slot.kind == "pingpong" and slot.acks != sent:
                raise self.fail(f"pingpong on {slot.receiver}: {sent} posts, {slot.acks} acknowledgements")
            slot.base += sent
            slot.job = slot.joining = None
            slot.acks = 0

    async def loop_phase(self, phase: str) -> None:
        rng = self.rng
        self.phase = phase
        self.loop_phases[phase] += 1
        if phase == "busy":
            _spin(rng.uniform(0, 0.003))            # SN stays set: posts are suppressed
        elif phase == "blocked":
            await asyncio.sleep(rng.uniform(0, 0.003))
        elif phase == "blocked on a post":
            self.loop_delivery.clear()
            await self.bounded(self.loop_delivery.wait(), "blocked until the next post")
        elif phase == "masked":
            with self.r_loop.masked():              # CLUI across awaits
                _spin(rng.uniform(0, 0.0005))
                await asyncio.sleep(rng.uniform(0, 0.002))
                _spin(rng.uniform(0, 0.0005))
        elif phase == "stalled":
            time.sleep(rng.uniform(0, 0.002))       # the loop thread away, GIL released
        else:
            for _ in range(rng.randint(1, 20)):
                await asyncio.sleep(0)

    async def solo(self, who: tuple[str, int], natives: list[Slot], StampSender: Any) -> None:
        """One sender, everyone else quiet, ping-pong: the loop waits with no timer but a
        guard, so a lost wakeup is a guard that expires."""
        kind, n = who
        self.phase = "solo"
        self.solo_done.clear()
        if kind == "sender":
            self.solos["thread" if n < self.cfg.threads else "process"] += 1
            self.ctl.w[W_SOLO] = n
            self.ctl.w[W_ROUNDS] = self.cfg.rounds
            self.ctl.w[W_GEN] += 1
            self.ctl.w[W_MODE] = SOLO
            await self.bounded(self.solo_done.wait(), f"solo of sender {n}")
            self.check_senders()
        else:
            self.solos["pingpong"] += 1
            self.ctl.w[W_SOLO] = MAX_SENDERS          # nobody's: every Python sender quiet
            self.ctl.w[W_GEN] += 1
            self.ctl.w[W_MODE] = SOLO
            slot = [s for s in natives if s.kind == "pingpong"][n]
            slot.acks = 0
            slot.job = StampSender(slot.sender, self.cfg.rounds, self.rng.choice((0, 100_000)))
            await self.bounded(self.solo_done.wait(), f"ping-pong solo on {slot.receiver}")
            sent, err = slot.job.join()
            if err or sent != self.cfg.rounds or slot.acks != sent:
                raise self.fail(f"pingpong solo: sent={sent} err={err} acks={slot.acks}")
            slot.base += sent
            slot.job = None
            slot.acks = 0
        self.ctl.w[W_MODE] = STORM

    async def finish(self) -> None:
        """Stop every sender, then wait (guarded) for every final post to be observed."""
        self.phase = "stopping"
        self.ctl.w[W_MODE] = STOP
        await self.bounded(asyncio.to_thread(self.reap), "sender shutdown")
        self.check_senders()
        self.phase = "drain"
        self.finishing = True
        self.check_drained()
        await self.bounded(self.drained.wait(), "the final posts")

    def reap(self, kill: bool = False) -> None:
        for thread in self.threads:
            thread.join(self.cfg.guard)
        for proc in self.procs:
            if kill and proc.poll() is None:
                proc.kill()
            try:
                out, err = proc.communicate(timeout=self.cfg.guard)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            if proc.returncode != 0 and not kill:
                self.thread_errors.append(f"process failed ({proc.returncode}): {out[-500:]} {err[-2000:]}")
            elif not kill:
                report = json.loads(out.strip().splitlines()[-1])["sent"]
                for index, count in report.items():
                    if self.ctl.slot(int(index), P_SENT) != count:
                        self.thread_errors.append(f"process slot {index}: reported {count}, "
                                                  f"shared memory says {self.ctl.slot(int(index), P_SENT)}")

    # ---- the exact accounting ------------------------------------------------------------

    def verify(self, elapsed: float) -> dict[str, Any]:
        problems = list(self.problems) + self.thread_errors
        for slot in self.slots:
            sent, seen = self.sent(slot), slot.seen
            if slot.kind == "pingpong":
                if slot.deliveries != sent:
                    problems.append(f"pingpong {slot.receiver}: {sent} posts, {slot.deliveries} deliveries")
            elif not (seen == self.published(slot) == sent):
                problems.append(f"{slot.kind} {slot.receiver} v{slot.vector}: sent {sent}, "
                                f"published {self.published(slot)}, last seen {seen}")
            if slot.deliveries > sent:
                problems.append(f"{slot.kind} {slot.receiver} v{slot.vector}: "
                                f"{slot.deliveries} deliveries for {sent} posts")
        for sid in range(self.cfg.threads):
            if self.cst_next[sid] != self.ctl.sender(sid, S_CST_SENT):
                problems.append(f"thread {sid}: {self.ctl.sender(sid, S_CST_SENT)} call_soon_threadsafe, "
                                f"{self.cst_next[sid]} ran")
        stats = {"loop receiver": self.r_loop.statistics(), "task receiver": self.r_task.statistics()}
        for (name, st), rname in zip(stats.items(), ("loop", "task")):
            posts = sum(self.sent(s) for s in self.slots if s.receiver == rname)
            if st.posted != posts:
                problems.append(f"{name}: statistics().posted={st.posted}, senders counted {posts}")
            if st.posted != st.notifications + st.coalesced + st.suppressed:
                problems.append(f"{name}: posted != notifications + coalesced + suppressed: {st}")
            deliveries = sum(s.deliveries for s in self.slots if s.receiver == rname)
            if st.delivered != deliveries or st.refused:
                problems.append(f"{name}: {st} but {deliveries} handler calls")
        loop_st = self.loop.statistics()
        if loop_st.posted != loop_st.notifications + loop_st.coalesced + loop_st.suppressed or loop_st.refused:
            problems.append(f"loop: {loop_st}")
        # Each receiver notification is a post to the loop's UPID (NV = its block); on the
        # asyncio base so is every call_soon_threadsafe, while the uvloop base's mailbox
        # posts only when it goes from empty to non-empty (at least once).
        cst = sum(self.cst_next[:self.cfg.threads])
        floor = sum(st.notifications for st in stats.values())
        floor += cst if self.cfg.base == "asyncio" else min(cst, 1)
        if loop_st.posted < floor:
            problems.append(f"loop: posted {loop_st.posted}, expected at least {floor}")
        for name, st in (*stats.items(), ("loop", loop_st)):
            if st.spurious > st.notifications:
                problems.append(f"{name}: more spurious notifications than notifications: {st}")
        repairs = repair_count(self.loop)
        if repairs:
            problems.append(f"the repair completed {repairs} posts (it was off, no sender was killed)")
        if problems:
            raise self.fail("the counts do not add up:\n  " + "\n  ".join(problems))
        return self.summary(elapsed, stats, loop_st)

    def summary(self, elapsed: float, stats: dict[str, Any], loop_st: Any) -> dict[str, Any]:
        kinds: dict[str, dict[str, int]] = {}
        for slot in self.slots:
            row = kinds.setdefault(slot.kind, {"senders": 0, "posts": 0, "deliveries": 0})
            row["posts"] += self.sent(slot)
            row["deliveries"] += slot.deliveries
        for kind, count in (("thread", self.cfg.threads), ("process", self.cfg.processes),
                            ("native", 2), ("pingpong", 2)):
            if kind in kinds:
                kinds[kind]["senders"] = count
        for kind in kinds:
            kinds[kind]["solo rounds"] = self.solos[kind] * self.cfg.rounds
        cst = sum(self.cst_next[:self.cfg.threads])
        kinds["call_soon_threadsafe"] = {"senders": self.cfg.threads, "posts": cst, "deliveries": cst,
                                         "solo rounds": 0}
        return {
            "base": self.cfg.base, "seed": self.seed, "seconds": round(elapsed, 1),
            "kinds": kinds,
            "statistics": {k: dataclasses.asdict(v) for k, v in stats.items()}
            | {"loop": dataclasses.asdict(loop_st)},
            "loop phases": dict(self.loop_phases), "task phases": dict(self.task_phases),
            "storms": self.storms, "solos": dict(self.solos), "native bursts": self.native_bursts,
            "repairs": repair_count(self.loop),
        }


def _faulty(vfd: Any, fault: str) -> Callable[[], object]:
    """A send with a fault injected once, after 50 good posts, to prove the soak fails:
    "dropped-post" counts a post and never makes it; "lost-wakeup" makes the first half
    of a post (PIR, then ON) and never notifies, as a lost wakeup would leave it."""
    from _testcore._cells import half_post

    sender = uintr_loop.Sender(vfd)
    state = {"posts": 0, "injected": False}

    def send() -> None:
        state["posts"] += 1
        if state["posts"] > 50 and not state["injected"]:
            if fault == "dropped-post":
                state["injected"] = True
            elif half_post(sender) == 0:         # UINTR_POST_NOTIFY: ON set, nobody told
                state["injected"] = True
            return
        sender.send()
    return send


class _IgnorePending:
    """The classic lost wakeup, for the asyncio base's selector: clear SN before
    blocking but ignore what is already pending (a post that came while SN was set
    notified nobody), and block anyway."""

    def __init__(self, port: Any) -> None:
        self._port = port

    def prepare_to_block(self, timeout: float) -> bool:
        self._port.prepare_to_block(timeout)
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)


def _shuffled(rng: random.Random, items: tuple[str, ...]) -> Iterator[str]:
    """The items in random order, again and again: random, and each in every round."""
    while True:
        order = list(items)
        rng.shuffle(order)
        yield from order


def _spin(seconds: float) -> None:
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


def run_soak(config: SoakConfig) -> dict[str, Any]:
    """Run the soak on ``config.base`` for ``config.seconds``; return the counts, or
    raise SoakFailure with the state dumped."""
    soak = Soak(config)
    old_interval = sys.getswitchinterval()
    old_repair = _core.REPAIR_INTERVAL, _core.REPAIR_ON_EXIT
    sys.setswitchinterval(config.switch_interval)
    # no sender is killed: a repair could only hide a lost wakeup
    _core.REPAIR_INTERVAL, _core.REPAIR_ON_EXIT = 3600.0, False
    try:
        return uintr_loop.run(soak.main(), base=config.base, busy_poll=config.busy_poll)
    finally:
        _core.REPAIR_INTERVAL, _core.REPAIR_ON_EXIT = old_repair
        sys.setswitchinterval(old_interval)
        if soak.table_map is not None:
            soak.table_map.close()
        soak.ctl.close()


def format_table(results: list[dict[str, Any]]) -> str:
    out = ["| base | sender kind | senders | posts | handler calls / callbacks run | ping-pong rounds |",
           "|---|---|---|---|---|---|"]
    for res in results:
        for kind, row in res["kinds"].items():
            out.append(f"| {res['base']} | {kind} | {row['senders']} | {row['posts']} | "
                       f"{row['deliveries']} | {row['solo rounds']} |")
    out += ["", "| base | receiver | posted | notifications | coalesced | suppressed | delivered | spurious |",
            "|---|---|---|---|---|---|---|---|"]
    for res in results:
        for name, st in res["statistics"].items():
            out.append(f"| {res['base']} | {name} | {st['posted']} | {st['notifications']} | "
                       f"{st['coalesced']} | {st['suppressed']} | {st['delivered']} | {st['spurious']} |")
    out.append("")
    for res in results:
        out.append(f"{res['base']}: {res['seconds']} s, seed {res['seed']}, {res['storms']} storms, "
                   f"solos {res['solos']}, {res['native bursts']} native bursts, repairs {res['repairs']}")
        out.append(f"  loop phases {res['loop phases']}")
        out.append(f"  task phases {res['task phases']}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per base (default 60)")
    parser.add_argument("--base", choices=("asyncio", "uvloop", "both"), default="both")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=3, help="Python sender threads")
    parser.add_argument("--processes", type=int, default=3, help="sender processes")
    parser.add_argument("--busy-poll", type=float, default=0, help="the loop's busy_poll (us)")
    parser.add_argument("--switch-interval", type=float, default=1e-4,
                        help="sys.setswitchinterval during the run (s)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(json.loads(args.child))
    bases = ("asyncio", "uvloop") if args.base == "both" else (args.base,)
    results = []
    for base in bases:
        print(f"soak: {base} base, {args.seconds:g} s ...", flush=True)
        results.append(run_soak(SoakConfig(
            base=base, seconds=args.seconds, seed=args.seed, threads=args.threads,
            processes=args.processes, busy_poll=args.busy_poll,
            switch_interval=args.switch_interval)))
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print("soak: every post counted exactly, every final post observed, no guard expired")
    return 0


if __name__ == "__main__":
    sys.exit(main())
