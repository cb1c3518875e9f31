from libc.stdint cimport uint32_t, uint64_t


cdef extern from "upid.h" nogil:
    const unsigned UINTR_NVEC
    const unsigned UINTR_TABLE_SLOTS
    const unsigned UINTR_WAKEUP_VECTOR
    const uint64_t UINTR_ON
    const uint64_t UINTR_SN
    const uint64_t UINTR_SHUT
    const int UINTR_NV_SHIFT
    const int UINTR_NDST_SHIFT
    const int UINTR_POST_NOTIFY
    const int UINTR_POST_COALESCED
    const int UINTR_POST_SUPPRESSED

    ctypedef struct uintr_upid_t:
        pass

    ctypedef struct uintr_block_t:
        pass

    ctypedef struct uintr_table_t:
        uintr_block_t block[64]

    int uintr_upid_post(uintr_block_t *b, unsigned vector)
    uint64_t uintr_upid_recognise(uintr_block_t *b, int *had_on)
    int uintr_upid_pending(uintr_block_t *b)
    void uintr_upid_suppress(uintr_block_t *b)
    int uintr_upid_restore(uintr_block_t *b)
    void uintr_upid_shutdown(uintr_block_t *b)
    int uintr_upid_is_shut(uintr_block_t *b)
    void uintr_upid_init(uintr_block_t *b, unsigned nv, uint32_t ndst)
    uint64_t uintr_upid_status(uintr_block_t *b)
    uint64_t uintr_upid_pir(uintr_block_t *b)
    void uintr_block_counters(uintr_block_t *b, uint64_t out[4])
    unsigned uintr_highest(uint64_t bits)
