# cython: language_level=3
"""uintr_loop's compiled core: UPIDs, the send path and the loop's port.

One extension, one concern per included file:
  errors.pxi    exceptions of the public API
  sender.pxi    the send path, Sender and the nogil cimport API
  port.pxi      a loop's UPID table and notification channel (the loop side)
  receiver.pxi  Receiver and VectorFd (recognition, delivery, masking)
  mailbox.pxi   call_soon_threadsafe for a base with a private ready queue
  uvhook.pxi    the uvloop base: the loop's UPID around libuv's poll phase
  port_hardware.pxi  the Port's side of the hardware backend (mode="hardware")
  probe.pxi     CPUID and kernel ABI probes
The protocol itself is C, in includes/upid.h, with the essay on why it is safe.
"""
import asyncio
import inspect
import threading
import traceback

from libc.errno cimport ESHUTDOWN, errno
from libc.stdint cimport uint32_t, uint64_t
from posix.types cimport pid_t
from posix.unistd cimport getpid

from cpu cimport uintr_cpuid_leaf7_edx, uintr_raw_syscall2
from memfd cimport uintr_map_table, uintr_unmap_table
from notify cimport (UINTR_CHANNEL_NONE, uintr_channel_close, uintr_channel_notify,
                     uintr_channel_open, uintr_channel_t)
from busypoll cimport uintr_busy_poll, uintr_poll_stats_t
from send cimport uintr_sender_c, uintr_sender_post, uintr_sender_send
from upid cimport *

from uintr_loop._types import ReceiverStatistics

include "errors.pxi"
include "sender.pxi"
include "port.pxi"
include "receiver.pxi"
include "mailbox.pxi"
include "uvhook.pxi"
include "port_hardware.pxi"
include "probe.pxi"
