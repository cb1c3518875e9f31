cdef extern from "threadsafe.h":
    ctypedef object (*uintr_post_fn)(object mailbox, object callback, object args, object context)
    object uintr_threadsafe_bind(object mailbox, uintr_post_fn post)
