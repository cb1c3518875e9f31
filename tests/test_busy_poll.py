"""Busy-poll on both bases: before blocking, the loop spins on its PIR (for a
fixed ``busy_poll``, or when the adaptive wakeup, the default, expects a
post); a post that lands during the spin is taken without a notification,
and ``statistics().busy_polls``/``busy_poll_hits``/``busy_poll_time`` say how
often that paid off and what it cost. Correctness only (no timed
assertions): timing is for benchmarks/.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _support import HANG_GUARD, guarded

import uintr_loop

SPIN_US = 1_000_000     # the longest spin allowed: a second for the thread to post
GIL = getattr(sys, "_is_gil_enabled", lambda: True)()


def test_busy_poll_zero_never_spins(uintr_only_loop: Any) -> None:
    """busy_poll=0 overrides the adaptive wakeup: not even round trips in
    flight (which the adaptive policy would spin for) make the loop spin."""
    loop = uintr_only_loop
    assert loop.busy_poll == "auto"
    loop.busy_poll = 0
    assert loop.busy_poll == 0.0

    async def main() -> None:
        for _ in range(3):
            await asyncio.sleep(0.001)          # blocks three times
        for _ in range(200):
            await asyncio.to_thread(lambda: None)   # and is woken by a thread

    loop.run_until_complete(main())
    st = loop.statistics()
    assert (st.busy_polls, st.busy_poll_hits, st.busy_poll_time) == (0, 0, 0.0)


def test_adaptive_idle_loop_never_spins(uintr_only_loop: Any) -> None:
    """Nothing expected (no round trip in flight, no post taken recently):
    the loop blocks at once, on timers and forever-waits alike."""
    loop = uintr_only_loop

    async def main() -> None:
        for _ in range(5):
            await asyncio.sleep(0.003)          # longer than the post horizon

    loop.run_until_complete(main())
    assert loop.statistics().busy_polls == 0


def test_adaptive_spins_for_round_trips_and_counts_its_time(uintr_only_loop: Any) -> None:
    """Round trips whose answers come quickly make the loop spin before it
    blocks (the window grows from blocks that ended in a post soon), and
    every spin's time is counted. That a thread answers within the longest
    window at least once in 2000 round trips is the only timing assumed."""
    loop = uintr_only_loop

    async def main() -> None:
        for _ in range(2000):
            await asyncio.to_thread(lambda: None)
            if loop.statistics().busy_polls >= 20:
                break

    loop.run_until_complete(main())
    st = loop.statistics()
    assert st.busy_polls >= 1, st
    assert 0 <= st.busy_poll_hits <= st.busy_polls
    assert st.busy_poll_time > 0.0


def test_adaptive_sparse_posts_never_spin(uintr_only_loop: Any) -> None:
    """A thread posting with gaps far longer than the longest window (1 ms)
    while nothing else wakes the loop: every block ends late, so the window
    never opens: no spin starts as the loop blocks."""
    loop = uintr_only_loop

    async def main() -> None:
        done = loop.create_future()
        got = threading.Semaphore(0)
        n = 40

        def on_loop(i: int) -> None:
            got.release()
            if i == n - 1:
                done.set_result(None)

        def paced() -> None:
            for i in range(n):
                time.sleep(0.001)
                loop.call_soon_threadsafe(on_loop, i)
                got.acquire(timeout=HANG_GUARD)

        t = threading.Thread(target=paced)
        t.start()
        try:
            await guarded(done)
        finally:
            t.join(HANG_GUARD)

    loop.run_until_complete(main())
    st = loop.statistics()
    # The alarm may learn so steady a pace and spin just before a post is
    # due; no spin starts with the block.
    assert st.busy_polls == st.busy_poll_alarms, st


@pytest.mark.parametrize("value", ["auto", 0, 25.5])
def test_busy_poll_setting_round_trips(uintr_only_loop: Any, value: Any) -> None:
    loop = uintr_only_loop
    loop.busy_poll = value
    assert loop.busy_poll == (value if value == "auto" else float(value))
    assert loop.run_until_complete(asyncio.to_thread(lambda: 7)) == 7


def test_a_post_during_the_spin_is_taken_without_a_notification(uintr_only_loop: Any) -> None:
    """The thread posts once it sees the loop's spin start (busy_polls moves;
    the spin runs without the GIL). Whether it got there within the spin is up
    to the scheduler, so a round that missed it (and notified, as a loop that
    blocks must be) is retried; every round must deliver."""
    loop = uintr_only_loop
    loop.busy_poll = SPIN_US

    async def one_round() -> tuple[int, int]:
        fut = loop.create_future()
        before = loop.statistics()

        def post_during_spin() -> None:
            give_up = time.monotonic() + HANG_GUARD    # never strand the thread
            while loop.statistics().busy_polls == before.busy_polls and time.monotonic() < give_up:
                time.sleep(0.0001)
            loop.call_soon_threadsafe(fut.set_result, "taken")

        t = threading.Thread(target=post_during_spin)
        t.start()
        try:
            assert await guarded(fut) == "taken"
        finally:
            t.join(HANG_GUARD)
        after = loop.statistics()
        assert after.busy_poll_hits <= after.busy_polls
        return after.busy_poll_hits - before.busy_poll_hits, after.notifications - before.notifications

    rounds = [loop.run_until_complete(one_round()) for _ in range(5)]
    # a hit: the spin saw the post, which found SN set (no syscall)
    assert any(hits >= 1 and notes == 0 for hits, notes in rounds), rounds


def test_busy_poll_loses_no_wakeup_under_a_thread_sender(uintr_only_loop: Any) -> None:
    """Posts from a thread land before, during and after spins (and in
    blocked sleeps when a spin gives up): each callback and each Sender.send
    must be taken exactly once."""
    loop = uintr_only_loop
    loop.busy_poll = 50
    n = 3_000

    async def main() -> tuple[list[int], int]:
        got: list[int] = []
        delivered = [0]
        done = loop.create_future()

        def on_loop(i: int) -> None:
            got.append(i)
            if i == n - 1:
                done.set_result(None)

        receiver = uintr_loop.Receiver(lambda v: delivered.__setitem__(0, delivered[0] + 1), loop=loop)
        sender = uintr_loop.Sender(receiver.vector_fd(9))

        def producer() -> None:
            for i in range(n):
                loop.call_soon_threadsafe(on_loop, i)
                sender.send()
                if i % 7 == 0:
                    time.sleep(0.0001)      # sometimes long enough for the spin to give up

        t = threading.Thread(target=producer)
        t.start()
        try:
            await guarded(done)
        finally:
            t.join(HANG_GUARD)
        for _ in range(3):
            await asyncio.sleep(0)
        posted = receiver.statistics().posted
        receiver.close()
        assert delivered[0] >= 1
        return got, posted

    got, posted = loop.run_until_complete(main())
    assert got == list(range(n))
    assert posted == n
    st = loop.statistics()
    assert st.busy_polls >= 1
    assert 0 <= st.busy_poll_hits <= st.busy_polls
    assert st.posted == st.notifications + st.coalesced + st.suppressed


@pytest.mark.parametrize("base", ["asyncio", "uvloop"])
def test_busy_poll_is_capped_by_the_next_timer(base: str) -> None:
    """A spin never outlasts the loop's own timeout: with a 1 s budget, 20
    sleeps of 1 ms would take 20 s if each spin ran its whole budget, and the
    hang guard (HANG_GUARD seconds) would fail the test."""
    loop = uintr_loop.new_event_loop(base=base, busy_poll=SPIN_US)
    try:
        async def sleeps() -> None:
            for _ in range(20):
                await asyncio.sleep(0.001)

        async def main() -> None:
            await guarded(sleeps())

        loop.run_until_complete(main())
        st = loop.statistics()
        assert st.busy_polls >= 1 and st.busy_poll_hits == 0
    finally:
        loop.close()


# The adaptive window's rule (busypoll.h: uintr_adapt_observe), driven
# directly: a block of a given length, ended by a post or not, caught by the
# spin or not. In microseconds; START 8, MAX 64.
US = 1000


@pytest.mark.parametrize(
    ("window", "waited", "post", "hit", "after"),
    [
        # a post the spin missed, soon enough for a spin to have caught it:
        # the window grows to cover that wait (with a quarter to spare), at
        # least doubling, at most MAX
        (0, 40, True, False, 50),
        (0, 4, True, False, 8),
        (16, 30, True, False, 37.5),
        (32, 20, True, False, 64),
        (32, 60, True, False, 64),
        # a post later than MAX: halve (sparse posts close it in a few blocks)
        (64, 200, True, False, 32),
        (12, 200, True, False, 0),
        (0, 200, True, False, 0),
        # caught by the spin: halve only if it came in under a quarter of it
        (64, 10, True, True, 32),
        (64, 30, True, True, 64),
        (8, 1, True, True, 8),
        # no post (I/O or a timer ended the block): a long one closes it
        (64, 200, False, False, 0),
        (64, 30, False, False, 64),
    ],
)
def test_adaptive_window_rule(window: float, waited: float, post: bool, hit: bool, after: float) -> None:
    cells = pytest.importorskip("_testcore._cells")
    assert cells.ADAPT_START_NS == 8 * US and cells.ADAPT_MAX_NS == 64 * US
    assert cells.adapt_after_block(int(window * US), int(waited * US), post, hit) == int(after * US)


def test_window_stays_over_the_slow_answers_of_a_two_speed_round_trip() -> None:
    """A round trip whose answers come at two speeds: most within 3 us, one
    in five 40 us later (anyio's worker, asleep on the other vCPU, woken
    through the host). Each quick catch halves the window, but not below the
    slowest recent answer with a quarter to spare, so after the first slow
    answer (missed, and learnt from) every slow one is caught."""
    cells = pytest.importorskip("_testcore._cells")
    window = cells.WindowCell()
    assert not window.block(40 * US)
    caught = []
    for _ in range(50):
        for _ in range(4):
            assert window.block(3 * US)
        caught.append(window.block(40 * US))
    assert all(caught)
    assert 40 * US <= window.window_ns <= cells.ADAPT_MAX_NS


def test_window_follows_the_answers_down_once_the_slow_ones_stop() -> None:
    """The slowest recent answer fades, a sixty-fourth a post: once every
    answer comes quickly, the window falls back to START within a few hundred
    posts and stays there (a spin that catches its post early costs only
    what it spun; a long window is paid for by posts that do not come)."""
    cells = pytest.importorskip("_testcore._cells")
    window = cells.WindowCell()
    window.block(60 * US)
    assert window.window_ns == cells.ADAPT_MAX_NS
    seen = []
    for _ in range(400):
        assert window.block(1 * US)
        seen.append(window.window_ns)
    assert seen == sorted(seen, reverse=True)
    assert seen[3] >= 60 * US
    assert seen[-1] == cells.ADAPT_START_NS
    assert seen.index(cells.ADAPT_START_NS) < 300


def test_gil_wait_backs_off_when_the_gil_stays_held() -> None:
    """A hand-off wait that runs out with the GIL still held leaves out the
    next 1, 2, 4, ... 64 waits; the ones left out return without spinning."""
    cells = pytest.importorskip("_testcore._cells")
    got = cells.adapt_gil_waits(12)
    assert got == [(1, 1), (0, 1), (2, 2), (1, 2), (0, 2), (4, 4), (3, 4), (2, 4), (1, 4), (0, 4),
                   (8, 8), (7, 8)]


def test_gil_word_says_whether_the_gil_is_held() -> None:
    """gilword.c finds the interpreter's own word: it reads held while this
    thread holds the GIL and free once it lets go."""
    cells = pytest.importorskip("_testcore._cells")
    word = cells.gil_word()
    if word is None:
        pytest.skip("this Python has no GIL (probed gilword.c's uintr_gil_word)")
    assert word == (1, 0)


STEADY = [(200 * US, True)] * 16     # the deviation starts at an eighth of the gap


def alarm(blocks: list[tuple[int, bool] | int], **kw: Any) -> tuple[Any, tuple[int, int]]:
    cells = pytest.importorskip("_testcore._cells")
    return cells.adapt_alarm(blocks, **kw)


def test_alarm_rings_before_a_steady_senders_post_and_spins_through_its_jitter() -> None:
    """Posts 200 us after every block: once there have been ALARM_SAMPLES of
    them and the deviation has come down, the alarm is set for the post's
    time less the deviation, the margin and the timer's own lateness, and
    its spin lasts until the post's time plus twice the deviation and the
    margin, and then as long again as a blocked wake-up costs (a late post
    is caught; an early one costs every post)."""
    cells = pytest.importorskip("_testcore._cells")
    assert cells.ALARM_SAMPLES == 4
    assert alarm(STEADY[:3])[0] is None, "armed before ALARM_SAMPLES posts"
    armed, (gap, dev) = alarm(STEADY)
    assert gap == 200 * US
    assert armed is not None
    ring, until = armed
    jitter = dev + cells.ALARM_MARGIN_NS
    assert (ring, until) == (gap - jitter - cells.ALARM_LATE_NS, gap + 2 * jitter + cells.WAKE_COST_NS)
    assert ring < 200 * US < until
    assert cells.ALARM_SHARE * jitter <= gap


def test_alarm_estimate_follows_the_gap_and_its_deviation() -> None:
    """RFC 6298's estimator with its error clipped: the deviation of a steady
    pace decays; one late post moves the mean an eighth and the deviation a
    quarter of the clip (two deviations and the margin), not of the error;
    a new pace is followed all the same, the clip growing post by post."""
    cells = pytest.importorskip("_testcore._cells")
    _, (gap, dev) = alarm([(200 * US, True)] * 30)
    assert gap == 200 * US and dev < 1 * US
    clip = 2 * dev + cells.ALARM_MARGIN_NS
    _, (gap3, dev3) = alarm([(200 * US, True)] * 30 + [(300 * US, True)])
    assert (gap3, dev3) == (gap + clip // 8, dev - dev // 4 + clip // 4)
    armed, (gap4, dev4) = alarm([(200 * US, True)] * 30 + [(300 * US, True)] * 40)
    assert abs(gap4 - 300 * US) < 2 * US and dev4 < 5 * US
    assert armed is not None


def test_alarm_lateness_is_learnt_from_a_ring_that_a_post_beat() -> None:
    """A post that ends the alarm's sleep while the timer's wake-up is still
    on its way leaves both ready at once: the lateness of that ring is learnt
    too (busypoll.h, uintr_alarm_wait), or the estimate would learn only the
    wake-ups that came before the post, the punctual ones. An event with no
    ring behind it teaches nothing.

    The alarm is set 1 ms in the past; whether the kernel has marked the
    timer by the time the sleep looks is its own business, so the ring is
    tried a few times, and one look that saw it is enough."""
    cells = pytest.importorskip("_testcore._cells")
    late = cells.ALARM_LATE_NS
    assert cells.alarm_wait_after_an_event(1_000_000_000) == (1, late)
    learnt = []
    for _ in range(50):
        rc, expected = cells.alarm_wait_after_an_event(-1_000_000)
        assert rc == 1
        learnt.append(expected)
        if expected != late:
            break
    assert learnt[-1] == late + late // 4, learnt


def test_alarm_lateness_is_learnt_and_clipped() -> None:
    """The timer's lateness starts at ALARM_LATE_NS and follows what the
    alarms see, a quarter of the way per alarm; one alarm far later than
    the estimate counts as twice the estimate."""
    cells = pytest.importorskip("_testcore._cells")
    late = cells.ALARM_LATE_NS
    assert cells.adapt_alarm_late([]) == late
    assert cells.adapt_alarm_late([late + 4 * US]) == late + US
    assert cells.adapt_alarm_late([100 * late]) == late + late // 4
    assert abs(cells.adapt_alarm_late([10 * US] * 60) - 10 * US) < US
    assert abs(cells.adapt_alarm_late([90 * US] * 60) - 90 * US) < US


def test_a_loose_pace_gets_a_spin_capped_at_its_share() -> None:
    """Gaps of 160 and 240 us in turn: a mean deviation of some 40 us, under
    a quarter of the mean, is still a pace; the spin reaches an eighth of the
    gap before the mean (twice that after it), not the deviation and the
    margin."""
    cells = pytest.importorskip("_testcore._cells")
    armed, (gap, dev) = alarm([(160 * US, True), (240 * US, True)] * 12)
    assert cells.ALARM_SPREAD * dev <= gap < cells.ALARM_SHARE * (dev + cells.ALARM_MARGIN_NS)
    assert armed is not None
    reach = gap // cells.ALARM_SHARE
    assert armed == (gap - reach - cells.ALARM_LATE_NS, gap + 2 * reach + cells.WAKE_COST_NS)


def test_blocked_wake_cost_is_learnt_dear_first_and_clipped() -> None:
    """A blocked wake-up's cost starts at WAKE_COST_NS, rises half the way to
    a dearer sample and falls an eighth of the way to a cheaper one; a sample
    past the longest window counts as the longest window."""
    cells = pytest.importorskip("_testcore._cells")
    start = cells.WAKE_COST_NS
    assert cells.adapt_wake_cost([]) == start
    assert cells.adapt_wake_cost([start + 8 * US]) == start + 4 * US
    assert cells.adapt_wake_cost([start - 8 * US]) == start - US
    assert cells.adapt_wake_cost([10**9]) == start + (cells.ADAPT_MAX_NS - start) // 2
    assert cells.adapt_wake_cost([10**9] * 40) == cells.ADAPT_MAX_NS
    assert abs(cells.adapt_wake_cost([30 * US] * 12) - 30 * US) < US
    assert abs(cells.adapt_wake_cost([30 * US] * 12 + [6 * US] * 80) - 6 * US) < US


def test_the_wake_up_cost_is_learnt_only_from_a_stamped_post_that_woke_the_loop() -> None:
    """uintr_adapt_observe learns a blocked wake-up's cost from a block that a
    stamped post ended without the spin catching it, timed from the stamp;
    a caught post, an unstamped one or a stamp from before the block teach
    it nothing. (The clock runs on between the stamp and the look, so only
    a lower bound holds for the sample, and the clip an upper one.)"""
    cells = pytest.importorskip("_testcore._cells")
    start = cells.WAKE_COST_NS
    learnt = cells.adapt_observe_wake(100 * US, 40 * US, True, False)
    assert start + (40 * US - start) // 2 <= learnt <= start + (cells.ADAPT_MAX_NS - start + 1) // 2
    assert cells.adapt_observe_wake(100 * US, 40 * US, True, True) == start, "the spin caught it"
    assert cells.adapt_observe_wake(100 * US, 40 * US, False, False) == start, "no stamp"
    assert cells.adapt_observe_wake(100 * US, 200 * US, True, False) == start, "stamped before the block"


def test_alarm_spin_after_the_post_lasts_a_blocked_wake_up_more() -> None:
    """The alarm's spin goes on past the pace's jitter for as long as a
    blocked wake-up costs, as learnt: a post that late costs that spin
    whether it is caught or not, so spinning never costs more than twice
    blocking (spin-then-block's rule); the ring is unchanged."""
    cells = pytest.importorskip("_testcore._cells")
    armed, estimate = alarm(STEADY)
    dear, estimate2 = alarm(STEADY + [("wake", 40 * US)] * 12)
    assert armed is not None and dear is not None and estimate == estimate2
    assert dear[0] == armed[0]
    learnt = cells.adapt_wake_cost([40 * US] * 12)
    assert dear[1] - armed[1] == learnt - cells.WAKE_COST_NS
    assert dear[1] - armed[1] > 25 * US


@pytest.mark.parametrize(
    ("blocks", "why"),
    [
        (STEADY + [(200 * US, False)], "a block ended without a post"),
        ([(40 * US, True)] * 8, "gaps within the longest window are the window's"),
        ([(3000 * US, True)] * 8, "gaps over ALARM_GAP_MAX_NS"),
        ([(100 * US, True), (300 * US, True)] * 12, "a deviation over a quarter of the gap is no pace"),
        (STEADY + [0, 0], "two alarms in a row missed"),
    ],
)
def test_alarm_stays_off(blocks: list[tuple[int, bool]], why: str) -> None:
    assert alarm(blocks)[0] is None, why


def test_one_missed_alarm_keeps_it_armed() -> None:
    """A miss is the pace's outlier: the alarm stays armed, with the same
    estimate, and a hit in between starts the count of misses again. Only
    ALARM_MISSES in a row disarm it (test_alarm_stays_off)."""
    cells = pytest.importorskip("_testcore._cells")
    assert cells.ALARM_MISSES == 2
    armed, estimate = alarm(STEADY)
    assert armed is not None
    assert alarm(STEADY + [0]) == (armed, estimate)
    assert alarm(STEADY + [0, 2, 0]) == (armed, estimate)
    assert alarm(STEADY + [0, 1, 0])[0] is None, "something else ready says nothing either way"
    assert cells.ALARM_RESAMPLES == 2
    again, _ = alarm(STEADY + [0, 0] + STEADY[:1])
    assert again is None, "alarms the misses disarmed wait for ALARM_RESAMPLES posts"
    again, _ = alarm(STEADY + [0, 0] + STEADY[:2])
    assert again is not None, "the sender was posting: ALARM_RESAMPLES posts re-arm it"
    gone, _ = alarm(STEADY + [0, 0] + [(200 * US, False)] + STEADY[:3])
    assert gone is None, "after a block with no post, a pace takes ALARM_SAMPLES posts again"


def test_alarm_stays_off_for_one_cpu_or_a_timer_due_first() -> None:
    assert alarm(STEADY, cpus=1)[0] is None
    armed, _ = alarm(STEADY)
    assert armed is not None
    span = armed[1]
    assert alarm(STEADY, timeout_ns=span + 1_000_000 - 1)[0] is None
    assert alarm(STEADY, timeout_ns=span + 1_000_000)[0] is not None


def test_a_poster_yields_the_gil_only_to_a_spin_that_has_lasted() -> None:
    """busypoll.h's rule: a post lets go of the GIL only if the loop has been
    spinning for YIELD_SPIN_NS (a flood's next post comes sooner after the
    loop's wait began, and keeps the GIL), and never where there is no GIL."""
    cells = pytest.importorskip("_testcore._cells")
    spin = 10**9
    assert cells.YIELD_SPIN_NS == 2000
    assert not cells.adapt_should_yield(0, spin), "the loop is not spinning"
    assert not cells.adapt_should_yield(spin, spin + cells.YIELD_SPIN_NS - 1)
    assert cells.adapt_should_yield(spin, spin + cells.YIELD_SPIN_NS)
    assert not cells.adapt_should_yield(spin, spin + 10 * cells.YIELD_SPIN_NS, gil=False)


def test_round_trips_from_a_thread_while_the_loop_spins(loop_factory: Any) -> None:
    """A thread's run_coroutine_threadsafe round trips, paced so that each
    post lands in the loop's spin: every answer comes back, in order, and the
    thread's own Python state is what it left. On the uintr loops (spinning
    200 us before each block) the posts that found the spin let go of the
    GIL for the loop (busy_poll_yields; none where there is no GIL); the only
    timing assumed is that one post in 300 lands at least 2 us into a 200 us
    spin."""
    loop = loop_factory()
    uintr = hasattr(loop, "busy_poll")
    if uintr:
        loop.busy_poll = 200
    n = 300

    async def square(i: int) -> int:
        return i * i

    def client() -> list[int]:
        mine = threading.local()
        mine.seen = []
        for i in range(n):
            time.sleep(50e-6)
            mine.seen.append(asyncio.run_coroutine_threadsafe(square(i), loop).result(HANG_GUARD))
        return list(mine.seen)

    async def main() -> list[int]:
        return await guarded(asyncio.to_thread(client))

    try:
        assert loop.run_until_complete(main()) == [i * i for i in range(n)]
        if uintr:
            assert_yielded(loop)
    finally:
        loop.close()


def assert_yielded(loop: Any) -> None:
    """Some posts let go of the GIL for the loop, and none beyond the posts
    made; none at all where there is no GIL."""
    st = loop.statistics()
    if GIL:
        assert 1 <= st.busy_poll_yields <= st.posted, st
    else:
        assert st.busy_poll_yields == 0, "no GIL to let go of"


@contextlib.contextmanager
def one_cpu() -> Iterator[int]:
    """This thread (and the threads it starts) pinned to one of its CPUs for
    the block: that CPU."""
    before = os.sched_getaffinity(0)
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


@pytest.mark.parametrize(
    ("rule", "who"),
    [
        ("adapt_on_spin_cpu", "a yielding poster on the CPU the loop's spin began on, in its waits"),
        ("adapt_poster_here", "a loop on the CPU the last Python post came from, in its spin and its GIL wait"),
    ],
)
def test_a_thread_on_the_other_ones_cpu_gives_it_the_cpu(rule: str, who: str) -> None:
    """busypoll.h's rules for two threads that share a CPU: the one that waits
    gives the CPU away at each step; on another CPU, or with no CPU noted
    (-1), it pauses. This thread is pinned to one CPU to ask."""
    cells = pytest.importorskip("_testcore._cells")
    shares = getattr(cells, rule)
    with one_cpu() as cpu:
        assert shares(cpu), who
        assert not shares(cpu + 1)
        assert not shares(-1)


def test_a_yield_sees_the_loop_come_back_even_unseen() -> None:
    """A yielding poster waits until the loop has woken since its post and
    waits again. On one CPU the loop does both while the poster is not
    running, so the poster never sees `parked` at 0: the loop's wake count
    tells it. Without a wake, or with the loop not yet waiting again, the
    wait runs out its bound (UINTR_HANDOFF_NS each)."""
    cells = pytest.importorskip("_testcore._cells")
    assert cells.adapt_yield_after([0, 1]) == 1
    assert cells.adapt_yield_after([0, 1, 0, 1]) == 1
    assert cells.adapt_yield_after([]) == 0, "the loop never woke"
    assert cells.adapt_yield_after([1]) == 0, "parked again without a wake"
    assert cells.adapt_yield_after([0]) == 0, "woke, not waiting again"


def test_round_trips_from_a_thread_on_the_loops_cpu(loop_factory: Any) -> None:
    """The loop's thread and a client thread pinned to one CPU, the uintr
    loops spinning 200 us before each block: the client can post only when
    the spin gives way, so its posts land in the spin and yield, each side
    waiting on the other's CPU. Every answer comes back, in order; the uintr
    loops count the yields (none where there is no GIL). That the waits give
    the CPU away, and so end early, is timing: the rule tests above check
    it, docs/design/adaptive-wakeup.md measures it."""
    loop = loop_factory()
    uintr = hasattr(loop, "busy_poll")
    if uintr:
        loop.busy_poll = 200
    n = 200
    answers: list[int] = []

    async def square(i: int) -> int:
        return i * i

    def client() -> None:
        for i in range(n):
            time.sleep(50e-6)
            answers.append(asyncio.run_coroutine_threadsafe(square(i), loop).result(HANG_GUARD))

    async def main() -> None:
        thread = threading.Thread(target=client)   # inherits the pinning
        thread.start()
        try:
            await guarded(asyncio.to_thread(thread.join))
        finally:
            thread.join(HANG_GUARD)

    try:
        with one_cpu():
            loop.run_until_complete(main())
        assert answers == [i * i for i in range(n)]
        if uintr:
            assert_yielded(loop)
    finally:
        loop.close()


def test_the_loops_own_posts_never_yield(uintr_only_loop: Any) -> None:
    """call_soon_threadsafe from the loop's own thread runs while the loop is
    not spinning (it spins without the GIL, running no Python): it never
    lets go of the GIL, however long the loop spun before."""
    loop = uintr_only_loop
    loop.busy_poll = 200
    ran = []

    async def main() -> None:
        for i in range(200):
            loop.call_soon_threadsafe(ran.append, i)
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert ran == list(range(200))
    assert loop.statistics().busy_poll_yields == 0
