from cpython.object cimport PyObject, PyTypeObject

cdef extern from "threadsafe.h":
    ctypedef object (*uintr_post_fn)(object mailbox, object callback, object args, object context)
    ctypedef int (*uintr_wake_fn)(object port) except -1
    void uintr_threadsafe_init(PyTypeObject *handle_type, uintr_post_fn post, uintr_wake_fn wake)
    bint uintr_mailbox_layout_ok(object mailbox, object items, object port, object loop,
                                 Py_ssize_t debug_at, Py_ssize_t closed_at)
    object uintr_threadsafe_bind(object mailbox)
