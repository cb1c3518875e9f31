cdef extern from "cpu.h" nogil:
    int uintr_cpuid_leaf7_edx(unsigned *edx)
    long uintr_raw_syscall2(long nr, long a0, long a1)
