from cpython.object cimport PyObject, PyTypeObject

cdef extern from "tshandle.h":
    object uintr_tshandle_context_of(object snapshot)
    bint uintr_tshandle_layout_ok(object h, object callback, object args, object context)
    object uintr_tshandle_new(PyTypeObject *tp, object callback, tuple args, object context)
    # no except clause: a handle returned leaves the exception set for the
    # caller to take
    PyObject *uintr_tshandle_drain(object items, Py_ssize_t *i, Py_ssize_t n, PyObject **box,
                                   PyObject **failed)
