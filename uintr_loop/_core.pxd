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

cdef const void *uintr_sender_handle(object sender) except NULL
cdef int uintr_send(const void *handle) noexcept nogil
