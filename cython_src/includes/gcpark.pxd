cdef extern from "gcpark.h":
    int uintr_gc_park(object obj)
    void uintr_gc_unpark(object obj)
