from libc.stdint cimport uint64_t


cdef extern from "uintr_hw.h" nogil:
    enum:
        UINTR_OP_REGISTER_HANDLER
        UINTR_OP_UNREGISTER_HANDLER
        UINTR_OP_VECTOR_FD
        UINTR_OP_REGISTER_SENDER
        UINTR_OP_UNREGISTER_SENDER
        UINTR_OP_WAIT
        UINTR_NOPS
        UINTR_NABIS
    const unsigned UINTR_HANDLER_FLAG_WAITING_RECEIVER
    const unsigned UINTR_HANDLER_FLAG_WAITING_SENDER

    ctypedef struct uintr_abi_t:
        const char *name
        long nr[6]
        unsigned handler_flags
        int unregister_sender_by_index
        int wait_takes_usec
        int uitt_per_thread
        int kernel_wakes_blocked
        int no_hardware_errno

    const uintr_abi_t uintr_abis[2]
    const uintr_abi_t *uintr_abi_find(const char *name)
    const char *uintr_op_name(int op)

    ctypedef struct uintr_hw_receiver_t:
        int bound
        long tid
        uint64_t vectors_used
        int wake_fd

    ctypedef struct uintr_hw_sender_t:
        int fd
        int index

    int uintr_hw_receiver_init(uintr_hw_receiver_t *rx, const uintr_abi_t *abi, int wake_fd)
    int uintr_hw_bind(uintr_hw_receiver_t *rx)
    int uintr_hw_vector_fd(uintr_hw_receiver_t *rx, unsigned vector)
    int uintr_hw_before_block(uintr_hw_receiver_t *rx)
    uint64_t uintr_hw_after_block(uintr_hw_receiver_t *rx)
    void uintr_hw_mask()
    void uintr_hw_unmask()
    int uintr_hw_close(uintr_hw_receiver_t *rx)
    long uintr_hw_wait(const uintr_abi_t *abi, uint64_t usec)
    void uintr_hw_record(uintr_hw_receiver_t *rx, uint64_t vector)
    int uintr_hw_sender_init(uintr_hw_sender_t *s, uintr_hw_receiver_t *rx, int vector_fd)
    int uintr_hw_send(void *sender)
    int uintr_hw_sender_close(uintr_hw_sender_t *s)

    # counters and flags, read through small accessors in hardware.pxi
    uint64_t uintr_hw_counter(uintr_hw_receiver_t *rx, int which)
    uint64_t uintr_hw_sender_sent(uintr_hw_sender_t *s)
    int uintr_hw_blocked(uintr_hw_receiver_t *rx)
    uint64_t uintr_hw_pending(uintr_hw_receiver_t *rx)

    # test-only fake (built with -DUINTR_FAKE_ABI; see tests/_testcore/fake_abi.h)
    ctypedef struct uintr_fake_entry_t:
        char what[32]
        long nr
        long a0
        long a1
        long result
        long tid
    int uintr_fake_configure(const char *abi_name)
    void uintr_fake_fail(int op, int err)
    int uintr_fake_log_size()
    const uintr_fake_entry_t *uintr_fake_log_entry(int i)
    int uintr_fake_uif_state()
    uint64_t uintr_fake_uirr()
    uint64_t uintr_fake_faults()
