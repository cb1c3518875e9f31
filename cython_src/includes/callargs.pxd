cdef extern from "callargs.h":
    object uintr_call_args(object callback, tuple args)
