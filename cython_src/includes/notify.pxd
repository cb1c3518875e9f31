cdef extern from "notify.h" nogil:
    const int UINTR_CHANNEL_NONE
    const int UINTR_CHANNEL_EVENTFD

    ctypedef struct uintr_channel_t:
        int kind
        int fd

    int uintr_channel_open(uintr_channel_t *ch)
    int uintr_channel_notify(const uintr_channel_t *ch)
    void uintr_channel_close(uintr_channel_t *ch)
