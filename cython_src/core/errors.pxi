import errno as _errno


class ReceiverClosedError(BrokenPipeError):
    """The receiver (or the loop it belongs to) is closed.

    Mirrors the kernel ABI's ESHUTDOWN for a send to a receiver that is gone:
    the post is refused loudly, never dropped in silence.
    """

    def __init__(self, message="the receiver is closed"):
        super().__init__(_errno.ESHUTDOWN, message)


class SenderClosedError(ValueError):
    """The Sender (or the VectorFd it would be made from) was closed."""


class InvalidVectorFdError(ValueError):
    """What was given as a vector fd is not one: not open, not a socket, or a
    socket that carries no uintr_loop capability."""


class HardwareUnavailableError(RuntimeError):
    """Hardware delivery was asked for where UINTR cannot be used."""


cdef int raise_send_error(int rc) except -1:
    if rc == -_errno.ESHUTDOWN:
        raise ReceiverClosedError()
    if rc == -_errno.EBADF:
        raise SenderClosedError("send on a closed Sender")
    raise OSError(-rc, "uintr_loop: notification failed")


cdef int check_handler(object handler) except -1:
    # A coroutine function would be called and its coroutine never awaited:
    # the body would silently never run (asyncio's debug mode refuses one
    # for call_soon for the same reason).
    if not callable(handler):
        raise TypeError("handler must be callable, got %r" % (handler,))
    if inspect.iscoroutinefunction(handler):
        raise TypeError("handler must be a plain function, not a coroutine function "
                        "(it runs as a loop callback; start a task from it): %r"
                        % (handler,))
    return 0


cdef inline int check_vector(object vector) except -1:
    if isinstance(vector, bool) or not isinstance(vector, int):
        raise TypeError("vector must be an int, got %s" % type(vector).__name__)
    if not 0 <= vector < UINTR_NVEC:
        raise ValueError("vector must be in 0..63, got %d" % vector)
    return 0
