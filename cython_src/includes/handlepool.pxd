from cpython.object cimport PyTypeObject

cdef extern from "handlepool.h":
    void uintr_handle_pool_install(PyTypeObject *tp)
    Py_ssize_t uintr_handle_pool_trim(bint force)
    Py_ssize_t uintr_handle_pool_size()
