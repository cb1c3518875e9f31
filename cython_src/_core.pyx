# cython: language_level=3, freethreading_compatible=True
"""uintr_loop's compiled core: UPIDs, the send path and the loop's port.

One extension, one concern per included file (in core/):
  errors.pxi    exceptions of the public API
  duration.pxi  the one check of a number of seconds or microseconds
  sender.pxi    the send path, Sender and the nogil cimport API
  port.pxi      a loop's UPID table and notification channel (the loop side)
  receiver.pxi  Receiver and VectorFd (recognition, delivery, masking)
  mailbox.pxi   call_soon_threadsafe for a base with a private ready queue
  executor.pxi  run_in_executor's shortest path: the worker answers the future
  jobqueue.pxi  the default executor's queue: spinning workers, the GIL hand-off
  uvhook.pxi    the uvloop base: the loop's UPID around libuv's poll phase
  port_hardware.pxi  the Port's side of the hardware backend (mode="hardware")
  vectorfd.pxi  vector fds across processes: export, open, liveness, repair
  probe.pxi     CPUID and kernel ABI probes
  shim.pxi      the scheduler shim: tasks as receivers
  preempt.pxi   the native preemption timer's glue
  metrics.pxi   what loop.statistics() adds: time, iterations, wake latency
The protocol itself is C, in includes/upid.h, with the essay on why it is safe.
"""
cimport cython
import asyncio
import contextvars
import inspect
import numbers
import threading
import traceback

import os
import select
import weakref

from libc.errno cimport ESHUTDOWN, errno
from libc.stdint cimport UINT64_MAX, uint32_t, uint64_t
from posix.types cimport pid_t
from posix.fcntl cimport F_DUPFD_CLOEXEC, fcntl
from posix.unistd cimport close, getpid

from liveness cimport (uintr_lease_acquire, uintr_lease_release, uintr_lease_t,
                       uintr_liveness_after_fork, uintr_liveness_state, uintr_register_self,
                       uintr_table_unwatched)
from cpu cimport uintr_cpuid_leaf7_edx, uintr_raw_syscall2
from memfd cimport uintr_map_table, uintr_unmap_table
from notify cimport (UINTR_CHANNEL_EVENTFD, UINTR_CHANNEL_NONE, uintr_channel_close, uintr_channel_notify,
                     uintr_channel_open, uintr_channel_t)
from busypoll cimport (UINTR_BUSY_POLL_ADAPTIVE, uintr_adapt_await_handoff, uintr_adapt_close, uintr_adapt_expect,
                      uintr_adapt_init, uintr_adapt_note_poster, uintr_adapt_observe, uintr_adapt_park,
                      uintr_adapt_poster_yields, uintr_adapt_t, uintr_adapt_wakes, uintr_adapt_yield_wait,
                      uintr_poll_stats_t, uintr_spin_before_block)
from gilword cimport uintr_gil_word
from mainstate cimport uintr_main_tstate_repair
from jobqueue cimport *
from loopstats cimport *
from send cimport uintr_sender_c, uintr_sender_post, uintr_sender_send
from upid cimport *
from vectorfd cimport (uintr_peer_set_t, uintr_peers_add, uintr_peers_close, uintr_peers_hold,
                       uintr_reg_open, uintr_reg_take, uintr_vfd_create, uintr_vfd_open,
                       uintr_vfd_opened_t)
from preempt cimport *

# The core imports nothing from the package (C headers <- core <- package):
# the package hands it what it needs at import. The statistics' value types
# (uintr_loop._types, pure Python) come through register_value_types(); the
# urgent-vector doorbell (uintr_loop._doorbell) through set_urgent_hook().
LoopStatistics = ReceiverStatistics = WakeLatency = None


def register_value_types(receiver_statistics, loop_statistics, wake_latency):
    """Called once by uintr_loop._types: the classes the core builds its
    statistics with (the core cannot import the package that imports it)."""
    global ReceiverStatistics, LoopStatistics, WakeLatency
    ReceiverStatistics = receiver_statistics
    LoopStatistics = loop_statistics
    WakeLatency = wake_latency

include "core/errors.pxi"
include "core/duration.pxi"
include "core/sender.pxi"
include "core/port.pxi"
include "core/receiver.pxi"
include "core/mailbox.pxi"
include "core/executor.pxi"
include "core/jobqueue.pxi"
include "core/uvhook.pxi"
include "core/port_hardware.pxi"
include "core/vectorfd.pxi"
include "core/probe.pxi"
include "core/shim.pxi"
include "core/preempt.pxi"
include "core/metrics.pxi"


# -- reached by the project's test extension (tests/_testcore) through
# uintr_loop/_core.pxd: the tests call the core's own rules and state here,
# never a copy of them (static C state in a header is per extension).

cdef int uintr_check_vector(object vector) except -1:
    return check_vector(vector)


cdef object uintr_block_statistics(const void *block):
    return block_statistics(<uintr_block_t *>block, "software", 0, 0)


cdef object uintr_sender_watch_figures(object loop):
    return sender_watch_figures(loop)


cdef object uintr_liveness_figures():
    return liveness_figures()


cdef void uintr_preempt_force_thread(bint on) noexcept:
    uintr_preempt_thread_only(on)
