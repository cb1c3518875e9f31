# The scheduler shim: tasks as receivers.
#
# In the kernel the thread is the receiver: switch_uintr_prepare sets SN on
# its UPID when it is switched out, switch_uintr_return clears SN and re-posts
# what is pending when it returns to user space. In asyncio the unit switched
# in and out is the task, and every task step is a loop callback scheduled
# through ``loop.call_soon`` (the C Task and the pure-Python one both look the
# method up on the loop; the callback is a step or wakeup bound to the task:
# ``callback.__self__ is task``). So the shim is an instance attribute
# ``loop.call_soon`` that wraps the steps of tasks that are receivers:
#
#     switch-in   restore: clear SN, take PIR, deliver what is pending to the
#                 task's handler before the task's own code continues.
#     switch-out  suppress: set SN (kept clear while the task is in wait()).
#
# Why this hook and not another: it needs no loop internals (no _run_once,
# no Handle subclass), so it works on any loop whose call_soon is looked up
# as a method, i.e. asyncio's selector loop and a uvloop.Loop subclass alike;
# it does not touch the task factory, so a user's factory and eager tasks
# (3.12+) are untouched; the coroutine is not wrapped, so Task.get_coro() and
# tracebacks are unchanged. The hook is engaged only while at least one task
# receiver is open: with none, the loop's call_soon is its own (zero cost);
# with some, a task that is not a receiver pays one method call layer, an
# attribute lookup, a type check, a dict probe (tasks hash by identity) and
# a vectorcall per step. An eager task's first step does not pass through
# call_soon; a receiver cannot exist before that step, and one created inside
# it is switched out by a callback queued behind it (see bind()).
#
# Everything here runs on the loop thread with the GIL; the only concurrent
# party is a sender, and the UPID protocol (upid.h) covers it: a post to a
# switched-out task sees SN and stays in PIR without any notification; the
# switch-in's restore (locked clear of SN, then load of PIR) cannot miss it.


cdef extern from "Python.h":
    ctypedef struct PyObject
    object PyObject_Vectorcall(object callable, PyObject **args, size_t nargsf,
                               PyObject *kwnames)

cdef tuple CONTEXT_KWNAMES = ("context",)

# The C Task and the pure-Python one (not a subclass of the C one).
TASK_TYPES = (asyncio.Task, getattr(asyncio.tasks, "_PyTask", asyncio.Task))

# Where each kind of task says it is running. The pure-Python Task records
# itself in asyncio.tasks._current_tasks (through the pure-Python
# _swap_current_task/_enter_task). Up to 3.13 the C Task and
# asyncio.current_task() (the C one) use that same dict, so one lookup sees
# both. From 3.14 the C Task keeps the running task in the C thread state and
# asyncio.current_task() reads only that: a _PyTask step is invisible to it.
# So: asyncio.current_task() first (the common case, the C Task), then the
# dict, which only a pure-Python task step fills on 3.14+ (and which is the
# same answer on older Pythons).
cdef dict PY_CURRENT_TASKS = getattr(asyncio.tasks, "_current_tasks", None)


def running_task(loop):
    """The task running on ``loop`` (which must be running), of either
    Task kind, or None."""
    task = asyncio.current_task(loop)
    if task is None and PY_CURRENT_TASKS is not None:
        task = PY_CURRENT_TASKS.get(loop)
    return task


class TaskReceiverError(RuntimeError):
    """A task receiver was used against its rules: the task is done, the
    call is made from another task, the task already has a receiver, or the
    loop has no scheduler shim."""


cdef class Shim:
    """The per-loop scheduler shim (see ``uintr_loop.install_shim``).

    ``installed``: tasks on this loop may become receivers. The call_soon
    hook itself is *engaged* only while at least one task receiver is open,
    so a loop with none runs exactly as without the shim (zero cost), and
    while one is open the other tasks pay one attribute lookup, a type check
    and a dict probe per step.
    """
    cdef readonly object loop
    cdef object base_call_soon     # the loop class's call_soon (a function)
    cdef dict tasks                # task -> its open TaskReceiver
    cdef readonly bint installed
    cdef readonly bint engaged
    cdef readonly uint64_t switches
    cdef readonly object urgent_running   # switched-in receiver with urgent vectors

    def __cinit__(self, loop):
        self.loop = loop
        self.tasks = {}
        self.installed = False
        self.engaged = False

    def install(self):
        """Let tasks on the loop become receivers (idempotent)."""
        self.installed = True
        if self.tasks:
            self.engage()

    def uninstall(self):
        """The opposite; refused while a task receiver is open."""
        if self.tasks:
            raise TaskReceiverError(
                "cannot remove the scheduler shim while %d task receiver(s) "
                "are open" % len(self.tasks))
        self.disengage()
        self.installed = False

    cdef engage(self):
        if self.engaged:
            return
        self.base_call_soon = type(self.loop).call_soon
        self.loop.call_soon = self.call_soon
        self.engaged = True

    cdef disengage(self):
        if not self.engaged:
            return
        try:
            del self.loop.call_soon
        except AttributeError:
            pass
        self.base_call_soon = None
        self.engaged = False

    cdef forget(self, TaskReceiver r):
        if self.tasks.get(r.task) is r:
            del self.tasks[r.task]
        if not self.tasks:
            self.disengage()

    @property
    def task_receivers(self):
        """How many task receivers are open on this loop."""
        return len(self.tasks)

    def receiver_of(self, task):
        """The open TaskReceiver of ``task``, or None."""
        return self.tasks.get(task) if isinstance(task, TASK_TYPES) else None

    def protects(self, task):
        """True while ``task``'s receiver is masked or in its handler: no
        urgent delivery (preemption) may land there."""
        found = self.receiver_of(task)
        if found is None:
            return False
        return (<TaskReceiver>found).mask_depth > 0 or (<TaskReceiver>found).in_handler

    def call_soon(self, callback, *args, context=None):
        """The loop's call_soon while engaged: wraps receiver tasks' steps."""
        cdef object found
        owner = getattr(callback, "__self__", None)
        if owner is not None and isinstance(owner, TASK_TYPES):
            found = self.tasks.get(owner)      # tasks hash by identity
            if found is not None:
                callback = make_task_step(<TaskReceiver>found, callback)
        return self.call_base(callback, args, context)

    cdef object call_base(self, callback, tuple args, context):
        # The class's call_soon through vectorcall (no tuple or dict built):
        # this is the whole cost of the hook for tasks that are not receivers.
        cdef PyObject *stack[8]
        cdef Py_ssize_t n = len(args), i
        base = self.base_call_soon
        if base is None:                       # disengaged meanwhile
            base = type(self.loop).call_soon
        if n > 5:
            return base(self.loop, callback, *args, context=context)
        stack[0] = <PyObject *>self.loop
        stack[1] = <PyObject *>callback
        for i in range(n):
            stack[2 + i] = <PyObject *>args[i]
        if context is None:
            return PyObject_Vectorcall(base, stack, 2 + n, NULL)
        stack[2 + n] = <PyObject *>context
        return PyObject_Vectorcall(base, stack, 2 + n, <PyObject *>CONTEXT_KWNAMES)


cdef class TaskWait        # defined below; TaskReceiver points to it


@cython.freelist(32)
cdef class TaskStep:
    """One step (or wakeup) of a receiver task, bracketed by switch-in and
    switch-out."""
    cdef TaskReceiver receiver
    cdef readonly object step

    def __call__(self, *args):
        cdef TaskReceiver r = self.receiver
        if r is None:       # built from Python, not by the shim
            raise TypeError("TaskStep objects are made by the scheduler shim only")
        try:
            r.switch_in()
        except BaseException:
            # SystemExit/KeyboardInterrupt from a handler: the step is not
            # lost, it runs next iteration (its vectors were taken already).
            r.switch_out()
            r.shim.call_base(self, args, None)
            raise
        try:
            return self.step(*args)
        finally:
            r.switch_out()

    def __repr__(self):
        return repr(self.step)


cdef inline TaskStep make_task_step(TaskReceiver receiver, step):
    # tp_new straight from the freelist: no argument parsing on this path
    cdef TaskStep ts = TaskStep.__new__(TaskStep)
    ts.receiver = receiver
    ts.step = step
    return ts


cdef class TaskReceiver(Receiver):
    """A task that is a receiver (``Receiver.for_task``); see
    docs/guide/task-receivers.md. Handlers run in the task's step, before
    the task's code, in its contextvars context (asyncio.current_task() is
    set only once the step proper begins)."""
    cdef readonly object task
    cdef Shim shim
    cdef TaskWait waiter          # the armed wait() not yet woken, or None
    cdef TaskWait woken_wait      # woken; its result is fixed at the next switch-in
    cdef bint running
    cdef list last_delivered
    cdef uint64_t urgent_mask

    cdef bind(self, Shim shim, task):
        self.shim = shim
        self.task = task
        self.last_delivered = []
        shim.tasks[task] = self
        shim.engage()
        task.add_done_callback(self._task_done)
        if running_task(self.loop) is task:
            # Created inside the task's running step, which was not wrapped:
            # switch it out once that step is over (this callback is queued
            # behind the step; the task's next step can only be queued later).
            self.running = True
            self.watch_urgent()
            self.loop.call_soon(self._first_switch_out)
        else:
            self.running = False
            uintr_upid_suppress(self.block)

    def _first_switch_out(self):
        if self.running:
            self.switch_out()

    def _task_done(self, task):
        self.close()

    cdef int take_pir(self) except -1:
        cdef int had_on = 0
        cdef uint64_t bits = uintr_upid_recognise(self.block, &had_on)
        if bits:
            self.uirr |= bits
        elif had_on:
            self.spurious += 1
        return 0

    cdef void watch_urgent(self):
        if self.urgent_mask and not self.closed:
            self.shim.urgent_running = self
            uintr_preempt_watch(self.block, self.urgent_mask)

    cdef void unwatch_urgent(self):
        if self.urgent_mask:
            uintr_preempt_unwatch(self.block)
            if self.shim is not None and self.shim.urgent_running is self:
                self.shim.urgent_running = None

    cdef int switch_in(self) except -1:
        cdef TaskWait woken
        self.running = True
        self.shim.switches += 1
        if self.last_delivered:
            self.last_delivered = []
        if not self.closed:
            self.watch_urgent()
            if uintr_upid_restore(self.block) or uintr_upid_pending(self.block):
                self.take_pir()
            if self.uirr and self.mask_depth == 0 and not self.in_handler:
                self.deliver_now()
        if self.woken_wait is not None:
            # the first switch-in after a wait() was woken: what it delivered
            # is that wait()'s result, read by the task's code right after
            woken = self.woken_wait
            self.woken_wait = None
            woken.value = tuple(self.last_delivered)
        return 0

    cdef void switch_out(self):
        self.running = False
        self.unwatch_urgent()
        if not self.closed and self.waiter is None:
            uintr_upid_suppress(self.block)

    cdef recognise(self):
        # The loop recognised this receiver's NV: a post arrived while SN was
        # clear (the task was running or waiting). Take it; wake a waiter.
        # Delivery itself happens in the task, at its next switch-in.
        if self.closed:
            return
        self.take_pir()
        if self.uirr and self.waiter is not None:
            self.waiter.complete(True, None)

    cdef schedule_delivery(self):
        pass        # never as a separate loop callback: only inside the task

    cdef int deliver_now(self, bint urgent_only=False, bint propagate_urgent=False) except -1:
        # urgent_only: an urgent interruption delivers only urgent vectors.
        # propagate_urgent: in the task's own code (an interruption, the end
        # of a masked section) an urgent handler's exception is raised there.
        return self.run_handlers(self.urgent_mask if urgent_only else UINT64_MAX,
                                 self.urgent_mask if propagate_urgent else 0)

    cdef int on_delivery(self, unsigned vector) except -1:
        self.last_delivered.append(vector)
        return 0

    cdef int unmask(self) except -1:
        self.take_pir()
        if self.uirr:
            self.deliver_now(False, True)   # taken right away, in the task
        return 0

    def _deliver(self):
        self.take_pir()
        self.deliver_now()

    def _urgent_interrupt(self):
        """From the preemption doorbell, at a bytecode boundary of this
        task's own code (the caller checked): take PIR and run the handlers
        of urgent vectors right here; their exceptions propagate into the
        interrupted code. Masked or in a handler: the bits wait in UIRR for
        the end of the section (taking them stops the doorbell)."""
        if self.closed or not self.running:
            return
        self.take_pir()
        if self.mask_depth or self.in_handler:
            return
        self.deliver_now(True, True)

    @property
    def urgent(self):
        """The vectors delivered even into running code (a frozenset)."""
        return frozenset(v for v in range(64) if (self.urgent_mask >> v) & 1)

    cdef int check_task(self, str what) except -1:
        self.check_thread(what)
        if self.closed:
            raise ReceiverClosedError()
        if running_task(self.loop) is not self.task:
            raise TaskReceiverError(
                "%s() of a task receiver must be called from its own task %r"
                % (what, self.task))
        return 0

    def masked(self):
        """Defer delivery to this task (CLUI) inside the block; what arrived
        is delivered on exit (STUI), in the task. Nests. Only from the task."""
        self.check_task("masked")
        return MaskedSection(self)

    def wait(self, timeout=None):
        """``await receiver.wait(timeout=None)``: uintr_wait. Suspend the task
        until one of its vectors arrives (returns at once if one is pending).

        Returns a TaskWait: an awaitable bound to this task when wait() is
        called, which is also an asyncio future-like object, so that
        ``asyncio.wait_for`` and ``asyncio.ensure_future`` use it as it is
        instead of wrapping it in a task of its own (3.10/3.11's wait_for
        does that to a coroutine): under ``wait_for``, ``asyncio.timeout``
        and a plain ``await`` alike, this task receives. The wait starts
        when the TaskWait is first awaited (or given a done callback); only
        this task may do that.

        The handler runs for each vector before the task continues (unless
        masked); returns the tuple of vectors delivered at that wake-up,
        highest first (empty while masked). Raises asyncio.TimeoutError after
        ``timeout`` seconds, ReceiverClosedError if the receiver is or gets
        closed, TaskReceiverError from another task or if already waiting,
        TypeError/ValueError for a ``timeout`` that is not a number (or is NaN).
        """
        timeout = check_wait_timeout(timeout)
        self.check_task("wait")
        return TaskWait(self, timeout)

    def close(self):
        """Close: pending vectors are dropped, later sends raise
        ReceiverClosedError, a waiting wait() raises it. Closed automatically
        when the task is done."""
        if self.closed:
            return
        self.unwatch_urgent()
        Receiver.close(self)
        if self.shim is not None:
            self.shim.forget(self)
        if self.waiter is not None:
            self.waiter.complete(None, ReceiverClosedError())

    def __repr__(self):
        state = "closed" if self.closed else "open"
        return "<TaskReceiver nv=%d %s task=%r>" % (
            self.slot, state, getattr(self.task, "get_name", lambda: "?")())


cdef object check_wait_timeout(timeout):
    """``timeout`` as wait() uses it: None (forever; also for +inf) or a
    number of seconds (<= 0: do not wait)."""
    if timeout is None:
        return None             # the common wait(), without a call
    timeout = check_duration(timeout, "timeout", none=True)
    return None if timeout == float("inf") else timeout


# wait(): a future-like object bound to the calling task.
#
# Why not a coroutine: on 3.10/3.11 asyncio.wait_for (and ensure_future,
# shield, gather everywhere) runs a coroutine in a task of its own, and the
# receiver's rule is that its own task receives: handlers run in that task's
# switch-in and wait() returns what that switch-in delivered. A coroutine
# would wait in the wrapper task, whose result is fixed before the receiver's
# task runs again. An object that asyncio.isfuture() accepts is used as it
# is by all of those (no wrapper), so the receiver's task itself blocks,
# either on the TaskWait (a plain await: it yields its inner loop future) or
# on wait_for's own waiter, released by the TaskWait's done callbacks.
#
# The sequence is the one the coroutine had: arm (in the task: take what is
# pending, deliver it and finish at once, or clear SN and wait); a post
# recognised by the loop completes the inner future (SN set again: the task
# is not running); the task's next switch-in delivers and fixes the result
# (``value``), which the task's code then reads. Timeout, close and
# cancellation complete the inner future with their outcome instead. All of
# it runs on the loop thread.

cdef class TaskWait:
    """What ``TaskReceiver.wait()`` returns: await it in the receiver's own
    task, directly or through ``asyncio.wait_for``/``asyncio.timeout``.
    Follows asyncio's future protocol (done, cancelled, result, exception,
    cancel, add/remove_done_callback, get_loop)."""
    cdef TaskReceiver receiver
    cdef object timeout
    cdef object inner             # the loop future the task blocks on (None: not armed)
    cdef object handle            # the timeout's TimerHandle
    cdef list callbacks           # [(fn, context)] added before completion
    cdef object value             # the delivered vectors, once fixed
    cdef public object _asyncio_future_blocking   # asyncio.isfuture() looks for it

    def __cinit__(self, TaskReceiver receiver not None, timeout):
        self.receiver = receiver
        self.timeout = timeout
        self.callbacks = []
        self._asyncio_future_blocking = False

    cdef int arm(self) except -1:
        """Start waiting (once): only from the receiver's own task."""
        cdef TaskReceiver r = self.receiver
        if self.inner is not None:
            return 0
        r.check_task("wait")
        if r.waiter is not None:
            raise TaskReceiverError("the task is already waiting on this receiver")
        loop = r.loop
        self.inner = loop.create_future()
        self.inner.add_done_callback(self._inner_done)
        # uintr_wait: SN stays clear while waiting (switch_out sees the
        # waiter), so a post notifies the loop, whose recognise() completes
        # us. Clear it now (locked, then look at PIR) and take what is there.
        r.waiter = self
        if uintr_upid_restore(r.block) or uintr_upid_pending(r.block):
            r.take_pir()
        if r.uirr:
            # pending already: delivered here, in the task (unless masked)
            r.waiter = None
            r.last_delivered = []
            if r.mask_depth == 0 and not r.in_handler:
                r.deliver_now()
            self.value = tuple(r.last_delivered)
            self.inner.set_result(True)
            return 0
        if self.timeout is not None:
            self.handle = loop.call_later(self.timeout, self._timed_out)
        return 0

    def _timed_out(self):
        self.handle = None
        self.complete(False, None)

    cdef complete(self, outcome, exc):
        """Woken (True), timed out (False) or failed (``exc``): the inner
        future gets the outcome; the task is no longer waiting."""
        cdef TaskReceiver r = self.receiver
        if self.inner is None or self.inner.done():
            return
        if exc is not None:
            self.inner.set_exception(exc)
        else:
            self.inner.set_result(outcome)
            if outcome:
                r.woken_wait = self
        self.stop_waiting()

    cdef stop_waiting(self):
        cdef TaskReceiver r = self.receiver
        if r.waiter is self:
            r.waiter = None
            if not r.running and not r.closed:
                uintr_upid_suppress(r.block)     # SN again: switched out
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def _inner_done(self, inner):
        # also reached when the task's cancellation cancels the inner future
        self.stop_waiting()
        loop = self.receiver.loop
        callbacks, self.callbacks = self.callbacks, []
        for fn, context in callbacks:
            loop.call_soon(fn, self, context=context)

    # -- asyncio's future protocol --------------------------------------------

    def __await__(self):
        self.arm()
        if not self.inner.done():
            yield from self.inner.__await__()
        return self.result()

    def get_loop(self):
        return self.receiver.loop

    def done(self):
        return self.inner is not None and self.inner.done()

    def cancelled(self):
        return self.inner is not None and self.inner.cancelled()

    def cancel(self, msg=None):
        if self.inner is None:             # never armed: nothing to undo
            self.inner = self.receiver.loop.create_future()
            self.inner.add_done_callback(self._inner_done)
        return self.inner.cancel(msg)

    def add_done_callback(self, fn, *, context=None):
        self.arm()
        if context is None:
            context = contextvars.copy_context()
        if self.inner.done():
            self.receiver.loop.call_soon(fn, self, context=context)
        else:
            self.callbacks.append((fn, context))

    def remove_done_callback(self, fn):
        kept = [(f, c) for f, c in self.callbacks if f != fn]
        removed = len(self.callbacks) - len(kept)
        self.callbacks = kept
        return removed

    cdef object outcome(self):
        """The exception this wait ended with, or None for vectors."""
        if self.inner is None or not self.inner.done():
            raise asyncio.InvalidStateError("Result is not set.")
        exc = self.inner.exception()     # raises CancelledError if cancelled
        if exc is not None:
            return exc
        if not self.inner.result():
            return asyncio.TimeoutError()
        if self.value is None:
            return TaskReceiverError(
                "the result of wait() is read by the receiver's own task, once it "
                "runs again (it is what that task's switch-in delivered)")
        return None

    def result(self):
        exc = self.outcome()
        if exc is not None:
            raise exc
        return self.value

    def exception(self):
        return self.outcome()

    def __repr__(self):
        state = ("pending" if self.inner is None or not self.inner.done()
                 else "cancelled" if self.inner.cancelled() else "finished")
        return "<TaskWait %s %r>" % (state, self.receiver)


# Set by uintr_loop._doorbell (set_urgent_hook): readies the doorbell for
# urgent vectors or raises PreemptionUnavailableError; the core cannot import
# the package, so the package registers it.
cdef object urgent_hook = None


def set_urgent_hook(hook):
    """The package's doorbell for urgent vectors (uintr_loop._doorbell)."""
    global urgent_hook
    if hook is not None and not callable(hook):
        raise TypeError("hook must be callable or None, got %r" % (hook,))
    urgent_hook = hook


def make_task_receiver(handler, task=None, urgent=()):
    """Receiver.for_task(handler, task=None, *, urgent=()): see its docstring."""
    cdef uint64_t urgent_mask = 0
    check_handler(handler)
    try:
        urgent = tuple(urgent)
    except TypeError:
        raise TypeError("urgent must be an iterable of vectors (ints in 0..63), "
                        "got %s" % type(urgent).__name__) from None
    for vector in urgent:
        check_vector(vector)
        urgent_mask |= (<uint64_t>1) << <unsigned>vector
    if task is None:
        # no running loop is "outside a task" too: the documented error,
        # not asyncio.current_task()'s bare RuntimeError
        running = asyncio._get_running_loop()
        task = running_task(running) if running is not None else None
        if task is None:
            raise TaskReceiverError(
                "Receiver.for_task() without a task must be called from a task")
    elif not isinstance(task, asyncio.Future) or not hasattr(task, "get_coro"):
        raise TypeError("task must be an asyncio Task, got %s" % type(task).__name__)
    if task.done():
        raise TaskReceiverError("the task is done: %r" % (task,))
    loop = task.get_loop()
    shim = getattr(loop, "_uintr_shim", None)
    if not isinstance(shim, Shim) or not (<Shim>shim).installed:
        raise TaskReceiverError(
            "the task's loop has no scheduler shim (%s): use a uintr_loop loop "
            "with the shim installed" % type(loop).__name__)
    owner = getattr(loop, "_thread_id", None)
    if owner is not None and owner != threading.get_ident():
        raise RuntimeError(
            "Receiver.for_task() must be called from the thread running the loop")
    found = (<Shim>shim).tasks.get(task)
    if found is not None:
        raise TaskReceiverError("the task already has a receiver: %r" % (found,))
    if urgent_mask:
        # the doorbell (a signal handler, main thread only: see preempt.h)
        # belongs to the package's deadline timer, which registers this hook
        if urgent_hook is None:
            raise TaskReceiverError(
                "urgent vectors need uintr_loop's deadline timer: import uintr_loop")
        urgent_hook()
    cdef TaskReceiver r = TaskReceiver(handler, loop=loop)
    r.urgent_mask = urgent_mask
    r.bind(<Shim>shim, task)
    return r
