# cython: language_level=3, freethreading_compatible=True
"""_testcore._cells: TEST-ONLY, built by `make test` from tests/_testcore,
never shipped. UpidCell, a window onto the protocol of includes/upid.h;
PacedPoster; half_post; the adaptive wakeup's window rule (busypoll.h), the
GIL word (gilword.h) and a counting context watcher (ctxwatch.h)."""
# UpidCell: a window onto the protocol of includes/upid.h.
#
# One UPID block of its own (64-byte aligned, as a table's blocks are), and
# one method per function of upid.h, each a direct call of it: the property
# tests (tests/test_protocol_model.py) drive these C steps and a pure-Python
# reference with the same operations and compare. Nothing here re-implements
# a step; a bug put into upid.h shows up through this class.
#
# post_all() posts a whole sequence with the GIL released, so that sender
# threads really race each other and the thread that recognises/restores in
# C, not merely take turns at the GIL. PacedPoster (includes/pacedpost.h)
# is a sender that posts again only once its last post was taken, for the
# lost-wakeup hunt.

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdlib cimport free
from libc.string cimport memset
from posix.stdlib cimport posix_memalign

from libc.stdint cimport UINT64_MAX, uint64_t

from busypoll cimport *
from gilword cimport uintr_gil_held, uintr_gil_word
from pacedpost cimport uintr_paced_post_run, uintr_paced_post_t

cdef extern from "ctxwatch.h":
    Py_ssize_t ctxwatch_switches
    int ctxwatch_add() except -1
    int ctxwatch_clear(int id) except -1
from send cimport uintr_sender_c
from upid cimport *
from uintr_loop._core cimport uintr_block_statistics, uintr_check_vector as check_vector
from uintr_loop._core cimport uintr_sender_handle


cdef class UpidCell:
    """One UPID block and the functions of upid.h on it (tests only)."""
    cdef uintr_block_t *block

    def __cinit__(self, nv=0, ndst=0):
        cdef void *mem = NULL
        if posix_memalign(&mem, 64, sizeof(uintr_block_t)) != 0:
            raise MemoryError()
        self.block = <uintr_block_t *>mem
        self.init(nv, ndst)

    def __dealloc__(self):
        free(self.block)

    def init(self, nv=0, ndst=0):
        """uintr_upid_init: PIR and counters zero, SN set, NV and NDST in."""
        check_vector(nv)
        if isinstance(ndst, bool) or not isinstance(ndst, int):
            raise TypeError("ndst must be an int, got %s" % type(ndst).__name__)
        if not 0 <= ndst < 2 ** 32:
            raise ValueError("ndst must be in 0..2**32-1, got %d" % ndst)
        uintr_upid_init(self.block, nv, ndst)

    def post(self, vector):
        """uintr_upid_post (steps P, R and the CAS of ON): a UINTR_POST_*
        code, or -ESHUTDOWN once shut down."""
        check_vector(vector)
        return uintr_upid_post(self.block, vector)

    def post_all(self, vectors):
        """Post each vector in turn with the GIL released; the list of codes."""
        cdef Py_ssize_t n = len(vectors), i
        cdef unsigned *vs
        cdef int *codes
        for v in vectors:
            check_vector(v)
        vs = <unsigned *>PyMem_Malloc(max(n, 1) * sizeof(unsigned))
        codes = <int *>PyMem_Malloc(max(n, 1) * sizeof(int))
        if vs == NULL or codes == NULL:
            PyMem_Free(vs)
            PyMem_Free(codes)
            raise MemoryError()
        try:
            for i in range(n):
                vs[i] = vectors[i]
            with nogil:
                for i in range(n):
                    codes[i] = uintr_upid_post(self.block, vs[i])
            return [codes[i] for i in range(n)]
        finally:
            PyMem_Free(vs)
            PyMem_Free(codes)

    def recognise(self):
        """uintr_upid_recognise (C then X): (the PIR taken, whether ON was set)."""
        cdef int had_on = 0
        cdef uint64_t bits = uintr_upid_recognise(self.block, &had_on)
        return bits, bool(had_on)

    def pending(self):
        """uintr_upid_pending: ON set or PIR non-zero."""
        return bool(uintr_upid_pending(self.block))

    def suppress(self):
        """uintr_upid_suppress: set SN."""
        uintr_upid_suppress(self.block)

    def restore(self):
        """uintr_upid_restore (U then L): True if PIR is non-zero."""
        return bool(uintr_upid_restore(self.block))

    def shutdown(self):
        """uintr_upid_shutdown: set the shut-down bit (never cleared)."""
        uintr_upid_shutdown(self.block)

    @staticmethod
    def highest(bits):
        """uintr_highest: the highest vector set in ``bits`` (non-zero)."""
        if isinstance(bits, bool) or not isinstance(bits, int):
            raise TypeError("bits must be an int, got %s" % type(bits).__name__)
        if not 0 < bits < 2 ** 64:
            raise ValueError("bits must be a non-zero 64-bit mask, got %d" % bits)
        return uintr_highest(bits)

    @property
    def status(self):
        """The status word (uintr_upid_status): ON, SN, SHUT, NV, NDST."""
        return uintr_upid_status(self.block)

    @property
    def pir(self):
        """The posted-interrupt requests (uintr_upid_pir)."""
        return uintr_upid_pir(self.block)

    @property
    def on(self):
        return bool(uintr_upid_status(self.block) & UINTR_ON)

    @property
    def sn(self):
        return bool(uintr_upid_status(self.block) & UINTR_SN)

    @property
    def shut(self):
        """uintr_upid_is_shut."""
        return bool(uintr_upid_is_shut(self.block))

    def counters(self):
        """uintr_block_counters: (notifications, coalesced, suppressed, refused)."""
        cdef uint64_t c[4]
        uintr_block_counters(self.block, c)
        return (c[0], c[1], c[2], c[3])

    def statistics(self):
        """The counters as a ReceiverStatistics, as a receiver reports them
        (nothing is delivered from a bare cell)."""
        return uintr_block_statistics(self.block)


cdef class PacedPoster:
    """Posts ``vector`` to ``cell`` ``count`` times, each time only once the
    previous post was taken and after 0..max_pause pause instructions
    (pacedpost.h). ``run()`` does it with the GIL released (call it from a
    thread); ``in_post`` is true from before P until the post returned."""
    cdef uintr_paced_post_t p
    cdef readonly UpidCell cell

    def __cinit__(self, UpidCell cell, vector, count, max_pause=0, seed=1):
        check_vector(vector)
        memset(&self.p, 0, sizeof(self.p))
        self.cell = cell
        self.p.block = cell.block
        self.p.vector = vector
        self.p.count = count
        self.p.max_pause = max_pause
        self.p.seed = seed

    def run(self):
        with nogil:
            uintr_paced_post_run(&self.p)

    def stop(self):
        """Make run() return at its next wait."""
        self.p.stop = 1

    @property
    def in_post(self):
        return self.p.in_post != 0

    @property
    def vector(self):
        return self.p.vector

    @property
    def done(self):
        """Posts made (read it after run() returned)."""
        return self.p.done

    def codes(self):
        """(notify, coalesced, suppressed, refused) of the posts made."""
        return (self.p.codes[0], self.p.codes[1], self.p.codes[2], self.p.codes[3])


POST_NOTIFY = UINTR_POST_NOTIFY
POST_COALESCED = UINTR_POST_COALESCED
POST_SUPPRESSED = UINTR_POST_SUPPRESSED


def half_post(sender):
    """The first half of a post and nothing more, as a sender killed between
    setting ON in the receiver's UPID and notifying leaves it (vectorfd.pxi:
    the repair). Returns the post's UINTR_POST_* result."""
    cdef uintr_sender_c *s = <uintr_sender_c *>uintr_sender_handle(sender)
    return uintr_upid_post(&s.table.block[s.index], s.vector)


ADAPT_START_NS = UINTR_ADAPT_START_NS
ADAPT_MAX_NS = UINTR_ADAPT_MAX_NS


cdef class WindowCell:
    """One loop's window (busypoll.h: uintr_adapt_learn) over a run of
    blocks, each ended by a post `waited_ns` after it began or not: a spin as
    long as the window catches a post that comes within it. Only the rule
    runs; nothing spins, sleeps or reads a clock."""
    cdef uintr_adapt_t a
    cdef uint64_t t

    def __cinit__(self, uint64_t window_ns=0):
        uintr_adapt_init(&self.a, 2, NULL)
        self.a.window_ns = window_ns
        self.t = 1

    @property
    def window_ns(self):
        return self.a.window_ns

    cdef void learn(self, uint64_t waited_ns, bint post, bint hit):
        self.a.hit = hit
        self.t += waited_ns
        uintr_adapt_learn(&self.a, waited_ns, post, self.t)

    def block(self, uint64_t waited_ns, bint post=True):
        """One block, learnt; returns whether the spin caught its post."""
        cdef bint hit = post and waited_ns <= self.a.window_ns
        self.learn(waited_ns, post, hit)
        return hit


def adapt_after_block(uint64_t window_ns, uint64_t waited_ns, bint post, bint hit):
    """The window busypoll.h's rule leaves after one block that began with
    window `window_ns` and ended `waited_ns` later, with a post or not,
    caught by the spin (`hit`) or not: uintr_adapt_learn, the rule
    uintr_adapt_observe applies to the block it timed. Only the rule runs;
    nothing spins, sleeps or reads a clock."""
    cdef WindowCell cell = WindowCell(window_ns)
    cell.learn(waited_ns, post, hit)
    return cell.a.window_ns


ALARM_GAP_MAX_NS = UINTR_ALARM_GAP_MAX_NS
ALARM_LATE_NS = UINTR_ALARM_LATE_NS
WAKE_COST_NS = UINTR_WAKE_COST_NS
ALARM_MARGIN_NS = UINTR_ALARM_MARGIN_NS
ALARM_SAMPLES = UINTR_ALARM_SAMPLES
ALARM_SHARE = UINTR_ALARM_SHARE
ALARM_SPREAD = UINTR_ALARM_SPREAD
ALARM_MISSES = UINTR_ALARM_MISSES
ALARM_RESAMPLES = UINTR_ALARM_RESAMPLES
YIELD_SPIN_NS = UINTR_YIELD_SPIN_NS


def adapt_alarm(blocks, uint64_t timeout_ns=UINT64_MAX, int cpus=2):
    """The alarm busypoll.h's rule sets for a block that starts at time 0,
    after `blocks`: (waited_ns, post) pairs, each fed to uintr_adapt_learn
    as one block that ended that long after it began, in a post or not;
    ints, each an alarm's outcome fed to uintr_adapt_alarm_rang (2: its spin
    saw the post, 0: it missed, 1: something else came first); and
    ("wake", cost_ns), a blocked wake-up's cost fed to uintr_adapt_wake_cost.
    Returns (ring_ns, until_ns) or None (no alarm), and (gap_ns, dev_ns), the
    estimate. Only the rule runs; nothing sleeps or reads a clock."""
    cdef uintr_adapt_t a
    cdef uint64_t ring = 0, until = 0, t = 1
    uintr_adapt_init(&a, cpus, NULL)
    for block in blocks:
        if isinstance(block, int):
            uintr_adapt_alarm_rang(&a, block)
            continue
        if block[0] == "wake":
            uintr_adapt_wake_cost(&a, block[1])
            continue
        waited, post = block
        t += waited
        uintr_adapt_learn(&a, waited, post, t)
    armed = uintr_adapt_alarm(&a, 0, timeout_ns, &ring, &until)
    return ((ring, until) if armed else None), (a.gap_ns, a.gap_dev_ns)


ctypedef void (*adapt_sample_t)(uintr_adapt_t *a, uint64_t sample) noexcept nogil


cdef uintr_adapt_t adapt_fed(adapt_sample_t learn, samples):
    """A fresh estimate that `learn` has been fed `samples`, one after the
    other. Only the rule runs."""
    cdef uintr_adapt_t a
    uintr_adapt_init(&a, 2, NULL)
    for sample in samples:
        learn(&a, sample)
    return a


def adapt_alarm_late(lates):
    """The timer lateness busypoll.h's alarm expects after its alarms rang
    `lates` ns late, one after the other (uintr_adapt_alarm_late), starting
    from ALARM_LATE_NS."""
    return adapt_fed(uintr_adapt_alarm_late, lates).alarm_late_ns


def adapt_wake_cost(costs):
    """The cost of a blocked wake-up busypoll.h expects after wake-ups that
    cost `costs` ns, one after the other (uintr_adapt_wake_cost), starting
    from WAKE_COST_NS."""
    return adapt_fed(uintr_adapt_wake_cost, costs).wake_ns


cdef extern from "sys/epoll.h" nogil:
    enum: EPOLLIN
    enum: EPOLL_CTL_ADD
    union epoll_data_t:
        int fd
    struct epoll_event:
        unsigned events
        epoll_data_t data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)

cdef extern from "sys/eventfd.h" nogil:
    int eventfd(unsigned initval, int flags)

from posix.unistd cimport close, write


def alarm_wait_after_an_event(long long ring_in_ns):
    """busypoll.h's alarm (uintr_alarm_wait) for a fresh UPID and a fresh
    estimate, due `ring_in_ns` from now (negative: already past), with an
    event already ready on the loop's epoll fd, as a post that came while the
    loop slept leaves it: (its return code, the timer lateness the estimate
    expects afterwards)."""
    cdef UpidCell cell = UpidCell()
    cdef uintr_adapt_t a
    cdef uintr_poll_stats_t st
    cdef epoll_event ev
    cdef uint64_t one = 1, ring
    cdef int epfd, efd, rc
    uintr_adapt_init(&a, 2, NULL)
    memset(&st, 0, sizeof(st))
    epfd = epoll_create1(0)
    efd = eventfd(0, 0)
    try:
        if epfd < 0 or efd < 0:
            raise OSError("no epoll fd or eventfd")
        ev.events = EPOLLIN
        ev.data.fd = efd
        if epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &ev) != 0 or write(efd, &one, sizeof(one)) != sizeof(one):
            raise OSError("cannot make the epoll fd ready")
        ring = <uint64_t>(<long long>uintr_monotonic_ns() + ring_in_ns)
        rc = uintr_alarm_wait(cell.block, &a, ring, ring, epfd, &st)
        return rc, a.alarm_late_ns
    finally:
        uintr_adapt_close(&a)
        if efd >= 0:
            close(efd)
        if epfd >= 0:
            close(epfd)


def adapt_observe_wake(uint64_t block_ago_ns, uint64_t posted_ago_ns, bint stamped, bint hit):
    """The wake-up cost busypoll.h has learnt after one look at a post
    (uintr_adapt_observe) that ends a block begun `block_ago_ns` ago, the
    post stamped `posted_ago_ns` ago (or not `stamped`), caught by the spin
    (`hit`) or not. The clock is read as the loop reads it; the cost learnt
    is at least `posted_ago_ns` for a stamped post the spin missed."""
    cdef uintr_adapt_t a
    cdef uint64_t now
    uintr_adapt_init(&a, 2, NULL)
    now = uintr_monotonic_ns()
    a.block_start = now - block_ago_ns
    a.hit = hit
    uintr_adapt_observe(&a, 1, now - posted_ago_ns if stamped else 0)
    return a.wake_ns


def adapt_on_spin_cpu(int spin_cpu):
    """Would a poster on this thread's CPU, now, give the CPU away in its
    yield's waits to a loop whose spin began on `spin_cpu` (-1: none)?
    (uintr_adapt_on_spin_cpu)"""
    cdef uintr_adapt_t a
    uintr_adapt_init(&a, 2, NULL)
    a.spin_cpu = spin_cpu
    return bool(uintr_adapt_on_spin_cpu(&a))


def adapt_poster_here(int post_cpu):
    """Would the loop, on this thread's CPU, take the last Python post as
    made from its own CPU (`post_cpu`, -1: none), and so give that CPU away
    in its waits and its spin? (uintr_adapt_poster_here)"""
    cdef uintr_adapt_t a
    uintr_adapt_init(&a, 2, NULL)
    a.post_cpu = post_cpu
    return bool(uintr_adapt_poster_here(&a))


def adapt_yield_after(parks):
    """A poster's yield, the loop's `parked` having been set to each of
    `parks` in turn after the poster read its wake count (as a loop that
    shares the poster's CPU does while the poster is not running): does the
    wait see the loop come back (1), or run out its bound (0)? The GIL
    word is free. (uintr_adapt_park, uintr_adapt_wakes,
    uintr_adapt_yield_wait)"""
    cdef uintr_adapt_t a
    cdef int word = 0
    cdef unsigned wakes
    uintr_adapt_init(&a, 2, &word)
    uintr_adapt_park(&a, 1)
    wakes = uintr_adapt_wakes(&a)
    for parked in parks:
        uintr_adapt_park(&a, parked)
    return uintr_adapt_yield_wait(&a, wakes)


def adapt_gil_waits(int calls):
    """(gil_skip, gil_backoff) after each of `calls` hand-off waits in a row
    on a GIL word that stays held (a word of our own, set to 1, standing in
    for the interpreter's): a wait runs out (UINTR_HANDOFF_NS of real spin)
    and grows the back-off; the waits it says to leave out return at once."""
    cdef uintr_adapt_t a
    cdef int word = 1
    cdef int i
    uintr_adapt_init(&a, 2, &word)
    out = []
    for i in range(calls):
        uintr_adapt_await_handoff(&a)
        out.append((a.gil_skip, a.gil_backoff))
    return out


def adapt_should_yield(uint64_t spin_since, uint64_t now, bint gil=True):
    """busypoll.h's rule for a poster: would a post at `now` let go of the
    GIL, the loop's spin having begun at `spin_since` (0: not spinning)?
    `gil`: False stands in for a build without a GIL (no word to watch).
    Only the rule runs."""
    cdef uintr_adapt_t a
    cdef int word = 0
    uintr_adapt_init(&a, 2, &word if gil else NULL)
    a.spin_since = spin_since
    return bool(uintr_adapt_should_yield(&a, now))


def gil_word():
    """What gilword.h's word says (None: this Python has no GIL), as (held,
    released): once with the GIL held by this thread, then with it released:
    1 if each of 1000 reads said held (another thread took the GIL every
    time), 0 if one said free."""
    cdef const int *word = uintr_gil_word()
    cdef int held, released = 1, i
    if word == NULL:
        return None
    held = uintr_gil_held(word)
    with nogil:
        for i in range(1000):
            if not uintr_gil_held(word):
                released = 0
                break
    return (held, released)


def context_watcher_add():
    """Add a watcher that counts context switches (3.14+): its id, or -2
    where this Python has no context watchers."""
    return ctxwatch_add()


def context_watcher_clear(int watcher):
    """Remove the watcher context_watcher_add() added."""
    ctxwatch_clear(watcher)


def context_switches():
    """The context switches the watcher has been told of so far."""
    return ctxwatch_switches
