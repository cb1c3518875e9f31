cdef extern from "gilword.h" nogil:
    const int *uintr_gil_word()
    int uintr_gil_held(const int *word)
