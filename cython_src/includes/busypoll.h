/*
 * busypoll.h - watch a UPID's PIR for a while before blocking (the idea of
 * Linux's busy_poll): a post that lands during the spin costs the sender no
 * syscall (SN is still set, so it only sets the PIR bit) and the receiver no
 * sleep and wake-up.
 *
 * Runs without the GIL. The loads are relaxed: the spin only decides whether
 * to block; the receiver then takes PIR with the seq_cst exchange in
 * recognise, which is what orders the sender's writes before the receiver's
 * reads. A post that lands after the spin gave up is the ordinary case that
 * restore() (clear SN, then load PIR) already handles, so the spin can only
 * make a wakeup cheaper, never lose one.
 */
#ifndef UINTR_LOOP_BUSYPOLL_H
#define UINTR_LOOP_BUSYPOLL_H

#include "clock.h"

#include <stdint.h>
#include <time.h>

#include "upid.h"

typedef struct {
    uint64_t polls;   /* spins started (the loop was about to block) */
    uint64_t hits;    /* spins that saw a post and so did not block */
} uintr_poll_stats_t;

/* Spin up to budget_ns. 1 if PIR became non-zero, else 0. */
static inline int uintr_busy_poll(uintr_block_t *b, uint64_t budget_ns,
                                  uintr_poll_stats_t *st)
{
    uint64_t deadline = uintr_monotonic_ns() + budget_ns;
    unsigned i;
    st->polls++;
    do {
        for (i = 0; i < 64; i++) {
            /* model step B */
            if (atomic_load_explicit(&b->upid.pir, memory_order_relaxed) != 0) {
                st->hits++;
                return 1;
            }
            __builtin_ia32_pause();
        }
    } while (uintr_monotonic_ns() < deadline);
    return 0;
}

#endif
