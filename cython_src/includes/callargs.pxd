cdef extern from "callargs.h":
    object uintr_take_error()
