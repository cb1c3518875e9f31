cdef extern from "memfd.h" nogil:
    void *uintr_map_table(int *fd_out, size_t size)
    void uintr_unmap_table(void *p, size_t size, int fd)
