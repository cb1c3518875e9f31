# cython: language_level=3, freethreading_compatible=True
"""_testcore._state: TEST-ONLY, built by `make test` from tests/_testcore,
never shipped. The core's private state that tests and benchmarks read or
switch, reached through uintr_loop/_core.pxd: the sender watch's figures,
the liveness watcher's, the deadline timer's fallback switch, the handle
pool's size and the count of forks whose signals were redirected."""

from uintr_loop._core cimport (uintr_handle_pool_held, uintr_liveness_figures,
                               uintr_main_tstate_repairs, uintr_preempt_force_thread,
                               uintr_sender_watch_figures)


def sender_watch_state(loop):
    """The loop's watch over sender processes (vectorfd.pxi): a dict of
    watched (processes), exits (seen), repairs and polling (the timer
    fallback runs)."""
    return uintr_sender_watch_figures(loop)


def repair_count(loop):
    """How many half-done posts the loop has completed."""
    return uintr_sender_watch_figures(loop)["repairs"]


def liveness_state():
    """This process's view of other processes' tables: a dict of leases
    (tables mapped), watched (owners watched), owner_deaths (tables the
    watcher shut down) and watcher_running."""
    return uintr_liveness_figures()


def preempt_thread_only(bint on):
    """Deliver deadlines through the pthread instead of the kernel timer
    (the fallback path), from the next start on."""
    uintr_preempt_force_thread(on)


def handle_pool_size():
    """Handles' memory the uvloop base's overflow pool holds (handlepool.h)."""
    return uintr_handle_pool_held()


def main_tstate_repairs():
    """How many forks, this process's own and its ancestors', left a child
    whose signals had to be pointed at its main thread (inherited;
    cython_src/interp/mainstate.c)."""
    return uintr_main_tstate_repairs()
