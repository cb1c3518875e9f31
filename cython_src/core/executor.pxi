# run_in_executor's shortest safe path (both bases).
#
# asyncio (and uvloop) run an executor job as executor.submit(func) wrapped
# by futures.wrap_future: the worker completes a concurrent.futures.Future
# (its condition variable, its done callbacks), whose callback posts
# _set_state with call_soon_threadsafe; on the loop, _copy_future_state
# takes the concurrent future's condition twice more to read its result
# and sets the asyncio future. Here the job submitted is an ExecutorJob: the
# worker runs func and posts the outcome straight to the asyncio future
# (one call_soon_threadsafe of resolve_job), and nothing waits on the
# concurrent future, which completes with None. That is one post per job,
# as before, minus the chaining.
#
# What wrap_future does besides, and how it is kept:
#  - the asyncio future cancelled: the concurrent one is cancelled, so a job
#    not yet started never runs. Here the job looks at the asyncio future
#    when it starts and does not run func if it is cancelled.
#  - the executor drops a job unrun (shutdown(cancel_futures=True)): the
#    asyncio future is cancelled. Here the job's finaliser, which runs when
#    the executor lets go of a job that never ran, posts the cancellation.
#  - the loop closed before the answer: the answer is dropped silently.
#  - concurrent.futures' exceptions are converted to asyncio's.
# Only ThreadPoolExecutor (and subclasses) take this path: the job is not
# picklable, and a process pool goes the base loop's way.
#
# The port is told that a round trip is in flight (Port.expect): the
# adaptive wakeup spins only while a post is expected (busypoll.h).

import concurrent.futures

_convert_future_exc = getattr(asyncio.futures, "_convert_future_exc", lambda exc: exc)


cdef class ExecutorJob:
    """The callable an executor runs for ``run_in_executor``."""
    cdef object loop
    cdef object fut
    cdef object func
    cdef tuple args
    cdef Port port
    cdef bint answered

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
        try:
            loop.call_soon_threadsafe(resolve_job, fut, result, error)
        except RuntimeError:
            if not loop.is_closed():
                raise
            # the loop closed meanwhile: nobody awaits the answer

    def __del__(self):
        # Dropped by the executor without having run (or after submit
        # failed, which marks it answered first).
        if not self.answered and self.fut is not None:
            fut = self.fut
            self.answer(None, None, False)
            try:
                self.loop.call_soon_threadsafe(cancel_job, fut)
            except RuntimeError:
                pass


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
    fut = loop.create_future()
    job = ExecutorJob.__new__(ExecutorJob)
    job.loop = loop
    job.fut = fut
    job.func = func
    job.args = args
    job.port = port
    port.expect(1)
    try:
        executor.submit(job)
    except BaseException:
        job.answered = True
        job.fut = job.func = job.args = None
        port.expect(-1)
        raise
    return fut
