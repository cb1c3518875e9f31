# The public cimport API of uintr_loop's compiled core.
#
# Native code sends without the GIL:
#
#     from uintr_loop._core cimport uintr_sender_handle, uintr_send
#
#     handle = uintr_sender_handle(sender)   # with the GIL, once
#     with nogil:
#         rc = uintr_send(handle)            # any thread, no GIL, no Python
#
# uintr_send returns 0 when the vector was posted (whether or not a
# notification was needed), -ESHUTDOWN when the receiver or its loop is gone,
# -EBADF when the Sender was closed, or another -errno from the notification
# channel. The handle stays valid while the Sender object is alive: keep a
# reference to it for as long as native code may send.

from libc.stdint cimport uint64_t

cdef const void *uintr_sender_handle(object sender) except NULL
cdef int uintr_send(const void *handle) noexcept nogil

# Not a public API: for the project's test extension (tests/_testcore), so
# that test code uses the core's own checks and figures. It may change at any
# release.
cdef int uintr_check_vector(object vector) except -1
cdef object uintr_block_statistics(const void *block)
cdef object uintr_sender_watch_figures(object loop)
cdef object uintr_liveness_figures()
cdef void uintr_preempt_force_thread(bint on) noexcept
cdef Py_ssize_t uintr_handle_pool_held() noexcept
cdef uint64_t uintr_main_tstate_repairs() noexcept
