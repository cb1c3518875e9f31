cdef extern from "callargs.h":
    object uintr_call_args(object callback, tuple args)
    # no except clause: the caller looks at the result and takes the error
    int uintr_call_in_context(object ctx, object callback, tuple args)
    object uintr_take_error()
