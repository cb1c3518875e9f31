# What loop.statistics() adds to the loop receiver's figures: time running
# and waiting, iterations, and wake latency (includes/loopstats.h has the why
# of the cost and the threading).
#
# Where each base feeds it:
#   asyncio  Port.prepare_to_block begins a wait, Port.recognise ends the
#            iteration (and the wait); a sampled call_soon_threadsafe queues
#            the loop's WakeProbe just ahead of its callback.
#   uvloop   the prepare hook begins a wait, the check hook ends the
#            iteration; libuv measures the wait itself (uv_metrics_idle_time:
#            epoll's return comes before the I/O callbacks of the poll phase,
#            which are busy time). The mailbox stamps the post that makes it
#            non-empty and files the sample when its drain starts.
#   both     UintrLoopAPI.run_forever brackets each run.


cdef int timing_wanted() except -1:
    """UINTR_LOOP_TIMING, read when a loop is made: "0" turns the clock reads
    of the loop's statistics off, "1" (the default) on."""
    value = os.environ.get("UINTR_LOOP_TIMING", "1").strip()
    if value in ("", "1"):
        return 1
    if value == "0":
        return 0
    raise ValueError("UINTR_LOOP_TIMING must be 0 or 1, got %r" % (value,))


def loop_run_begin(Port port not None):
    """The loop starts running (its run_forever)."""
    uintr_loopstats_run_begin(&port.loopstats)


def loop_run_end(Port port not None):
    """The loop stops running."""
    uintr_loopstats_run_end(&port.loopstats)


def loop_timing(Port port not None):
    """True if the loop's statistics read the clock (UINTR_LOOP_TIMING)."""
    return bool(port.loopstats.timing)


cdef inline object ns_to_s(uint64_t ns):
    return ns / 1e9


def loop_statistics(Port port not None):
    """The loop's LoopStatistics: the loop receiver's figures and the loop's
    own. Any thread; busy and idle time never go back between two calls."""
    cdef uintr_loopstats_snapshot_t snap
    cdef uint64_t busy_ns, idle_ns
    cdef int i
    base = port.statistics()
    uintr_loopstats_read(&port.loopstats, &snap)
    if not snap.timing:
        return LoopStatistics(**base.__dict__, timing=False, iterations=snap.iterations)
    idle_ns = snap.idle_ns if snap.idle_ns < snap.run_ns else snap.run_ns
    busy_ns = snap.run_ns - idle_ns
    # A reader on another thread can catch the loop between two stores (the
    # end of a wait), or read the current wait while libuv's own measure of
    # it, filed later, comes out a little shorter: keep both times monotonic.
    if port.stats_floor is not None:
        floor_busy, floor_idle = port.stats_floor
        busy_ns = max(busy_ns, floor_busy)
        idle_ns = max(idle_ns, floor_idle)
    port.stats_floor = (busy_ns, idle_ns)
    latency = WakeLatency(
        buckets=tuple([snap.lat[i] for i in range(UINTR_LAT_BUCKETS)]),
        total=ns_to_s(snap.lat_sum_ns),
        max=ns_to_s(snap.lat_max_ns),
    )
    return LoopStatistics(**base.__dict__, timing=True, iterations=snap.iterations,
                          busy_time=ns_to_s(busy_ns), idle_time=ns_to_s(idle_ns),
                          wake_latency=latency)


def latency_bucket(ns):
    """The histogram bucket of a latency of ``ns`` nanoseconds (tests)."""
    return uintr_lat_bucket(<uint64_t>ns)


@cython.final
cdef class WakeProbe:
    """The asyncio base's end of a wake-latency sample: queued in the ready
    queue just ahead of a sampled ``call_soon_threadsafe`` callback, it files
    the sample when it runs, as that callback starts. One per loop, queued at
    most once at a time (one stamp in flight), so sampling allocates nothing.
    It has what asyncio's loop reads of a ready Handle."""
    cdef Port port
    cdef readonly bint _cancelled       # always False: nothing cancels it

    def __cinit__(self, Port port not None):
        self.port = port

    def stamp(self):
        """A poster: True if this post is the one sampled (the caller then
        queues the probe before the post's callback)."""
        return bool(uintr_loopstats_stamp(&self.port.loopstats))

    def _run(self):
        uintr_loopstats_sample_end(&self.port.loopstats)

    @property
    def _callback(self):
        return None                     # asyncio's debug formatting reads it

    def cancelled(self):
        return False

    def __repr__(self):
        return "<WakeProbe>"
