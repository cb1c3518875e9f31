cdef extern from "mainstate.h":
    int uintr_main_tstate_repair()
