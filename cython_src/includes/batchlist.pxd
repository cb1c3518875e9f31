cdef extern from "batchlist.h":
    object uintr_list_take(list items, Py_ssize_t i)
    bint uintr_list_reset(list items, Py_ssize_t cap)
