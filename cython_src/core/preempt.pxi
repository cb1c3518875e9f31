# Preemption glue: the native timer (includes/preempt.h, with the essay on
# why it is safe and why the doorbell is a real-time signal and not
# Py_AddPendingCall) rings the main thread; the Python policy that raises or
# defers is uintr_loop._doorbell (asking uintr_loop._protection).


# The doorbell is a signal handler, so a child forked from a thread other
# than the main one needs its signals to reach its main thread (CPython 3.13+
# keeps sending them to the parent's: cython_src/interp/mainstate.c).
cdef uint64_t main_tstate_repairs = 0


def _main_tstate_after_fork():
    global main_tstate_repairs
    main_tstate_repairs += uintr_main_tstate_repair()


os.register_at_fork(after_in_child=_main_tstate_after_fork)


cdef uint64_t uintr_main_tstate_repairs() noexcept:
    # for the test extension (uintr_loop/_core.pxd)
    return main_tstate_repairs


def preempt_start(int signum):
    """Start the native preemption timer (idempotent); call it from the main
    thread. When an armed deadline passes it sends ``signum`` to that thread:
    the Python handler installed for ``signum`` runs there at the next
    bytecode boundary. Internal: uintr_loop._doorbell owns it."""
    cdef int rc = uintr_preempt_start(signum)
    if rc != 0:
        raise OSError(rc, "uintr_loop: cannot start the preemption timer")


def preempt_arm(uint64_t token, uint64_t when_ns):
    """Arm the timer's one slot: ``token`` fires at ``when_ns`` (monotonic)."""
    if token == 0:
        raise ValueError("token 0 means disarmed")
    uintr_preempt_arm(token, when_ns)


def preempt_disarm():
    uintr_preempt_disarm()


def preempt_stop():
    """Stop and join the timer thread (registered at exit)."""
    with nogil:
        uintr_preempt_stop()


def preempt_counters():
    """(deadlines rung, pthread_kill failures, last deadline ring time in
    ns, urgent-vector rings)."""
    cdef uint64_t c[4]
    uintr_preempt_counters(c)
    return (c[0], c[1], c[2], c[3])


def monotonic_ns():
    """CLOCK_MONOTONIC in ns, the timer's clock (same as time.monotonic_ns)."""
    return uintr_monotonic_ns()


def preempt_uses_timer():
    """True if deadlines currently ride the kernel (POSIX) timer."""
    return bool(uintr_preempt_uses_timer())


def signal_disposition(int signum):
    """The kernel's disposition of ``signum`` (sigaction): 0 default, 1
    ignored, otherwise the handler's address, whoever installed it (Python's
    signal.getsignal() does not see a handler installed from C)."""
    cdef intptr_t d = uintr_signal_disposition(signum)
    if d == -1:
        raise ValueError("invalid signal number %d" % signum)
    return d
