cdef extern from "batchlist.h":
    int uintr_list_push(list items, object item) except -1
    object uintr_list_take(list items, Py_ssize_t i)
    bint uintr_list_reset(list items, Py_ssize_t cap)
