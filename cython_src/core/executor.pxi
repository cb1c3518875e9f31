# run_in_executor's shortest safe path (both bases).
#
# asyncio (and uvloop) run an executor job as executor.submit(func) wrapped
# by futures.wrap_future: the executor makes a concurrent.futures.Future and
# a work item around func; the worker marks the future running (its
# condition variable), runs func, completes the future (the condition again,
# its done callbacks), whose callback posts _set_state with
# call_soon_threadsafe; on the loop, _copy_future_state takes the concurrent
# future's condition twice more to read its result and sets the asyncio
# future. Here the job is an ExecutorJob: the worker runs func and posts the
# outcome straight to the asyncio future (one call_soon_threadsafe of
# resolve_job). No concurrent future exists at all on the direct path below;
# through executor.submit() one exists, and nothing waits on it.
#
# The direct path: a plain ThreadPoolExecutor's worker takes work items from
# the executor's queue and calls item.run() (item.run(ctx) from 3.14, ctx
# being what runs the task), nothing else; shutdown(cancel_futures=True)
# calls item.future.cancel() on the items it drops, and a failed thread
# initializer item.future.set_exception(). An ExecutorJob has that shape
# (its `future` is itself), so it goes into the queue as its own work item,
# after the checks submit() makes, under the same locks, and the executor
# grows its threads as submit() has it do. This reads the executor's private
# names (_work_queue, _adjust_thread_count, _shutdown_lock, _broken,
# _shutdown, and the module's _shutdown and _global_shutdown_lock), the same
# in every CPython this package supports; where one is missing the job goes
# through submit(), and a subclass always does (it may override submit).
#
# What wrap_future does besides, and how it is kept:
#  - the asyncio future cancelled: the concurrent one is cancelled, so a job
#    not yet started never runs. Here the job looks at the asyncio future
#    when it starts and does not run func if it is cancelled.
#  - the executor drops a job unrun (shutdown(cancel_futures=True)): the
#    asyncio future is cancelled. Here the job is cancelled by the executor
#    (direct path) or its finaliser runs when the executor lets go of a job
#    that never ran (through submit()); either posts the cancellation.
#  - the loop closed before the answer: the answer is dropped silently.
#  - concurrent.futures' exceptions are converted to asyncio's.
# Only thread pools take this path: the job is not picklable, so a process
# pool, and from 3.14 an InterpreterPoolExecutor (a ThreadPoolExecutor that
# runs each job in a subinterpreter), go the base loop's way.
#
# The port is told that a round trip is in flight (Port.expect): the
# adaptive wakeup spins only while a post is expected (busypoll.h).

import concurrent.futures
import concurrent.futures.thread as _tpe_module

_convert_future_exc = getattr(asyncio.futures, "_convert_future_exc", lambda exc: exc)
_interpreter_pool = getattr(concurrent.futures, "InterpreterPoolExecutor", None)
_direct_queue = all(hasattr(_tpe_module, name) for name in ("_shutdown", "_global_shutdown_lock"))


cdef int enqueue_job(executor, ExecutorJob job) except -1:
    """ThreadPoolExecutor.submit() with the job as its own work item."""
    with executor._shutdown_lock, _tpe_module._global_shutdown_lock:
        if executor._broken:
            raise getattr(executor, "BROKEN", _tpe_module.BrokenThreadPool)(executor._broken)
        if executor._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if _tpe_module._shutdown:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        executor._work_queue.put(job)
        executor._adjust_thread_count()
    return 0


cdef class ExecutorJob:
    """The callable an executor runs for ``run_in_executor``."""
    cdef object loop
    cdef object fut
    cdef object func
    cdef tuple args
    cdef Port port
    cdef bint answered
    cdef bint handoff               # the worker hands the GIL to the loop (jobqueue.pxi)

    # The work item's shape (the direct path): the worker calls run(); the
    # executor, dropping the job, cancels or fails its `future`.
    @property
    def future(self):
        return self

    def run(self, ctx=None):
        # Nothing may escape into the worker's loop, which would end the
        # thread; submit()'s work item swallows it into its future the same.
        try:
            self()
        except BaseException:
            concurrent.futures._base.LOGGER.exception("run_in_executor: the job's answer was not posted")

    def cancel(self):
        """The executor dropped the job unrun: its asyncio future is cancelled."""
        self.drop(None)
        return True

    def set_exception(self, exc):
        """The executor cannot run the job (its thread initializer failed)."""
        self.drop(exc)

    cdef drop(self, exc):
        if self.answered or self.fut is None:
            return
        fut = self.fut
        self.answer(None, None, False)
        try:
            if exc is None:
                self.loop.call_soon_threadsafe(cancel_job, fut)
            else:
                self.loop.call_soon_threadsafe(resolve_job, fut, None, exc)
        except RuntimeError:
            pass

    def __call__(self):
        cdef object result = None
        cdef object error = None
        if self.answered:
            return None
        if self.fut.cancelled():
            self.answer(None, None, False)
            return None
        try:
            result = self.func(*self.args)
        except BaseException as exc:
            error = exc
        self.answer(result, error, True)
        return None

    cdef answer(self, result, error, bint post):
        fut, loop = self.fut, self.loop
        self.answered = True
        self.fut = self.func = self.args = None
        self.port.expect(-1)
        if not post:
            return
        if self.handoff:
            uintr_jobq_owe(&self.port.adapt)     # jobqueue.h: the GIL baton
        try:
            loop.call_soon_threadsafe(resolve_job, fut, result, error)
        except RuntimeError:
            uintr_jobq_handed()
            if not loop.is_closed():
                raise
            # the loop closed meanwhile: nobody awaits the answer

    def __del__(self):
        # Dropped by the executor without having run (or after submit
        # failed, which marks it answered first).
        self.drop(None)


def resolve_job(fut, result, error):
    """Loop callback: the job's outcome into its asyncio future."""
    if fut.done():
        return              # cancelled meanwhile
    if error is None:
        fut.set_result(result)
    else:
        fut.set_exception(_convert_future_exc(error))


def cancel_job(fut):
    if not fut.done():
        fut.cancel()


def submit_executor_job(loop, Port port not None, executor, func, tuple args):
    """``run_in_executor`` for a thread pool (the checks done by the caller):
    an asyncio future of ``loop`` that the worker resolves directly."""
    cdef ExecutorJob job
    if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
        return None
    if _interpreter_pool is not None and isinstance(executor, _interpreter_pool):
        return None
    fut = loop.create_future()
    job = ExecutorJob.__new__(ExecutorJob)
    job.loop = loop
    job.fut = fut
    job.func = func
    job.args = args
    job.port = port
    port.expect(1)
    try:
        if _direct_queue and type(executor) is concurrent.futures.ThreadPoolExecutor:
            work_queue = executor._work_queue
            job.handoff = type(work_queue) is JobQueue and (<JobQueue>work_queue).hands_off_to(port)
            enqueue_job(executor, job)
        else:
            executor.submit(job)
    except BaseException:
        job.answered = True
        job.fut = job.func = job.args = None
        port.expect(-1)
        raise
    return fut
