from cpython.object cimport PyObject, PyTypeObject

cdef extern from "tshandle.h":
    object uintr_tshandle_context_of(object snapshot)
    bint uintr_tshandle_layout_ok(object h, object callback, object args, object context)
    object uintr_tshandle_new(PyTypeObject *tp, object callback, tuple args, object context)
    # no except clause: -1 leaves the exception set for the caller to take
    int uintr_tshandle_run(object h, bint held, PyObject **box, PyObject **failed)
