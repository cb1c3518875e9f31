"""A pure-Python reference of the delivery protocol, for the property tests.

Two levels, written from the specification (the essay in
``cython_src/includes/upid.h`` and the receiver code's documented behaviour),
not by calling the core:

* ``Upid``: one posted-interrupt descriptor, the steps of upid.h one to one:
  post is P (set the PIR bit) then R (read status) and the CAS of ON;
  recognise is C (clear ON) then X (take PIR); restore is U (clear SN) then
  L (test PIR); suppress sets SN; shutdown sets the shut-down bit, after
  which a post still does P but is refused. The counters are the block's.
* ``ReferenceLoop`` / ``ReferenceReceiver``: a loop's port and its receivers
  as the loop implements them (``port.pxi``, ``receiver.pxi``, ``send.h``):
  block 0 is the loop's UPID; a receiver's notification is a post of its NV
  (its slot) to block 0; the loop, each time round, sets SN on block 0,
  takes its PIR and lets each receiver named there (highest NV first)
  recognise its own UPID into UIRR; delivery is a loop callback that hands
  UIRR to the handler highest vector first, never nested; masking nests and
  the last unmask delivers what is pending at once (STUI); close drops UIRR
  and shuts the UPID, so later sends are refused.

A "round" of ``ReferenceLoop.run_round`` is one pass of the real loop's
dispatch followed by the delivery callbacks it queued: on the asyncio base a
select and the callbacks of that iteration; on the uvloop base the check
phase and the ready callbacks of the next iteration. Both bases run the same
sequence of rounds, so a single-threaded run is predicted exactly.

Sequential semantics only: the threaded property tests check the outcome
against invariants of this model, not step by step.
"""
from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

POST_NOTIFY = 0
POST_COALESCED = 1
POST_SUPPRESSED = 2
POST_SHUTDOWN = -errno.ESHUTDOWN

ON = 1 << 0
SN = 1 << 1
SHUT = 1 << 2
NV_SHIFT = 16
NDST_SHIFT = 32
NVEC = 64
TABLE_SLOTS = 64
WAKEUP_VECTOR = 0


class ReferenceClosedError(Exception):
    """The reference's ReceiverClosedError: a send to a closed receiver."""


def highest(bits: int) -> int:
    """The highest vector set in ``bits`` (63 is the highest priority)."""
    assert 0 < bits < 1 << NVEC
    return bits.bit_length() - 1


@dataclass
class Upid:
    """One UPID block: status (ON, SN, SHUT, NV, NDST), PIR and the senders'
    counters, with the operations of upid.h."""

    nv: int = 0
    ndst: int = 0
    on: bool = False
    sn: bool = True
    shut: bool = False
    pir: int = 0
    notifications: int = 0
    coalesced: int = 0
    suppressed: int = 0
    refused: int = 0

    def __post_init__(self) -> None:
        self.init(self.nv, self.ndst)

    def init(self, nv: int = 0, ndst: int = 0) -> None:
        """uintr_upid_init: PIR and counters zero, SN set, ON and SHUT clear."""
        self.nv, self.ndst = nv & 0xFF, ndst
        self.on, self.sn, self.shut = False, True, False
        self.pir = 0
        self.notifications = self.coalesced = self.suppressed = self.refused = 0

    @property
    def status(self) -> int:
        return (
            (ON if self.on else 0)
            | (SN if self.sn else 0)
            | (SHUT if self.shut else 0)
            | (self.nv << NV_SHIFT)
            | (self.ndst << NDST_SHIFT)
        )

    def post(self, vector: int) -> int:
        self.pir |= 1 << vector                     # P (even when shut down)
        if self.shut:                               # R and the checks
            self.refused += 1
            return POST_SHUTDOWN
        if self.on:
            self.coalesced += 1
            return POST_COALESCED
        if self.sn:
            self.suppressed += 1
            return POST_SUPPRESSED
        self.on = True                              # the CAS of ON
        self.notifications += 1
        return POST_NOTIFY

    def recognise(self) -> tuple[int, bool]:
        had_on, self.on = self.on, False            # C
        bits, self.pir = self.pir, 0                # X
        return bits, had_on

    def pending(self) -> bool:
        return self.on or self.pir != 0

    def suppress(self) -> None:
        self.sn = True

    def restore(self) -> bool:
        self.sn = False                             # U
        return self.pir != 0                        # L

    def shutdown(self) -> None:
        self.shut = True

    def counters(self) -> tuple[int, int, int, int]:
        return (self.notifications, self.coalesced, self.suppressed, self.refused)

    @property
    def posted(self) -> int:
        return self.notifications + self.coalesced + self.suppressed


@dataclass(frozen=True)
class Figures:
    """The fields of uintr_loop.ReceiverStatistics the model predicts."""

    posted: int
    notifications: int
    coalesced: int
    suppressed: int
    refused: int
    delivered: int
    spurious: int

    @classmethod
    def of(cls, stats: object) -> Figures:
        """The same fields of a real ReceiverStatistics."""
        return cls(**{name: getattr(stats, name) for name in cls.__dataclass_fields__})


def figures(block: Upid, delivered: int, spurious: int) -> Figures:
    n, c, s, r = block.counters()
    return Figures(n + c + s, n, c, s, r, delivered, spurious)


@dataclass(eq=False)
class ReferenceReceiver:
    """A Receiver: its UPID block (NV = its slot), UIRR, mask depth, flags."""

    loop: ReferenceLoop
    slot: int
    handler: Callable[[int], object]
    block: Upid = field(init=False)
    uirr: int = 0
    mask_depth: int = 0
    delivery_scheduled: bool = False
    in_handler: bool = False
    closed: bool = False
    delivered: int = 0
    spurious: int = 0
    senders: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.block = Upid(self.slot)
        self.block.restore()        # a loop's receiver always takes notifications

    def open_sender(self, vector: int) -> None:
        """Sender(receiver.vector_fd(vector)): refused once closed."""
        if self.closed:
            raise ReferenceClosedError
        self.senders.add(vector)

    def send(self, vector: int) -> None:
        """Sender.send(), as send.h's uintr_sender_post: post to this block;
        if that asks for a notification, post NV to the loop's block 0."""
        assert vector in self.senders, "open_sender first"
        rc = self.block.post(vector)
        if rc == POST_NOTIFY:
            rc = self.loop.block0.post(self.slot)
        if rc == POST_SHUTDOWN:
            raise ReferenceClosedError

    def recognise(self) -> None:
        if self.closed:
            return
        bits, had_on = self.block.recognise()
        if bits == 0:
            if had_on:
                self.spurious += 1
            return
        self.uirr |= bits
        self.schedule_delivery()

    def schedule_delivery(self) -> None:
        if self.uirr and self.mask_depth == 0 and not self.delivery_scheduled and not self.in_handler:
            self.delivery_scheduled = True
            self.loop.ready.append(self.deliver)

    def deliver(self) -> None:
        self.delivery_scheduled = False
        if self.in_handler:
            return
        while self.uirr and self.mask_depth == 0 and not self.closed:
            vector = highest(self.uirr)
            self.uirr &= ~(1 << vector)
            self.delivered += 1
            self.in_handler = True
            try:
                self.handler(vector)
            finally:
                self.in_handler = False
        if self.uirr and self.mask_depth == 0 and not self.closed:
            self.schedule_delivery()

    def mask(self) -> None:
        """Entering receiver.masked() (CLUI); refused once closed."""
        if self.closed:
            raise ReferenceClosedError
        self.mask_depth += 1

    def unmask(self) -> None:
        """Leaving receiver.masked(); the last one delivers at once (STUI)."""
        self.mask_depth -= 1
        if self.mask_depth == 0 and self.uirr and not self.in_handler:
            self.deliver()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.uirr = 0
        self.block.shutdown()
        self.loop.receivers.pop(self.slot, None)

    def figures(self) -> Figures:
        return figures(self.block, self.delivered, self.spurious)


class ReferenceLoop:
    """A loop's port (block 0) and its receivers, run round by round.

    Slots are handed out lowest first and, as the property tests keep every
    receiver (and its senders) alive, never reused.
    """

    MAX_ROUNDS = 1000

    def __init__(self) -> None:
        self.block0 = Upid(0)
        self.receivers: dict[int, ReferenceReceiver] = {}
        self.ready: deque[Callable[[], None]] = deque()
        self.next_slot = 1
        self.recognised = 0
        self.spurious = 0

    def new_receiver(self, handler: Callable[[int], object]) -> ReferenceReceiver:
        assert self.next_slot < TABLE_SLOTS
        r = ReferenceReceiver(self, self.next_slot, handler)
        self.receivers[r.slot] = r
        self.next_slot += 1
        return r

    def about_to_block(self) -> bool:
        """What the loop does before a select that may block: restore block 0."""
        return self.block0.restore()

    def dispatch(self) -> None:
        """Port.recognise: set SN on block 0, take its PIR, let the receivers
        it names recognise, highest NV first."""
        b = self.block0
        b.suppress()
        if not b.pending():
            return
        bits, had_on = b.recognise()
        if bits == 0:
            if had_on:
                self.spurious += 1
            return
        while bits:
            i = highest(bits)
            bits &= ~(1 << i)
            self.recognised += 1
            if i != WAKEUP_VECTOR:
                r = self.receivers.get(i)
                if r is not None:
                    r.recognise()

    def run_round(self) -> None:
        """One dispatch, then the delivery callbacks queued so far."""
        self.dispatch()
        for _ in range(len(self.ready)):
            self.ready.popleft()()

    def quiet(self) -> bool:
        return not self.block0.pending() and not self.ready

    def settle(self) -> int:
        """Run rounds until nothing is pending (at least one: every turn of
        the real loop sets SN on block 0); the number of rounds run."""
        self.run_round()
        rounds = 1
        while not self.quiet():
            assert rounds < self.MAX_ROUNDS, "the reference does not settle"
            self.run_round()
            rounds += 1
        return rounds

    def figures(self) -> Figures:
        return figures(self.block0, self.recognised, self.spurious)
