cdef extern from "gcpark.h":
    int uintr_gc_park(object obj)
