/*
 * The selftest's user-interrupt handler, built with -muintr
 * -mgeneral-regs-only (an interrupt handler must not touch x87/SSE state:
 * UIRET restores only what the frame holds).
 *
 * It records, per receiver thread (a thread-local id), every delivery and
 * its vector, in delivery order. Nothing else: the checks read the log.
 */
#include "uintr_test.h"

__thread int uintr_test_receiver_id;
struct delivery_log uintr_test_log[RECEIVERS];

void __attribute__((interrupt))
uintr_test_handler(struct __uintr_frame *frame, unsigned long long vector)
{
    int id = uintr_test_receiver_id;
    struct delivery_log *log;
    unsigned n;

    (void)frame;
    if (id < 0 || id >= RECEIVERS)
        return;
    log = &uintr_test_log[id];
    n = __atomic_load_n(&log->count, __ATOMIC_RELAXED);
    if (n < LOG_SIZE)
        log->vector[n] = (unsigned char)vector;
    __atomic_store_n(&log->count, n + 1, __ATOMIC_RELEASE);
}
