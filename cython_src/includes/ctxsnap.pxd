cdef extern from "ctxsnap.h":
    object uintr_ctx_snapshot()
    int uintr_ctx_load(object box, object vars) except -1
    bint uintr_ctx_is_snapshot(object obj)
    int uintr_ctx_init() except -1
