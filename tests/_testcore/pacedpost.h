/*
 * pacedpost.h - test only: a sender that posts one vector again only once
 * the receiver has taken the previous post (its PIR bit is clear), after a
 * random pause. It is how the property tests hunt a lost wakeup with real
 * threads: every post is, for a while, the last one, so a receiver that
 * restores (U, L), decides to block and is never notified leaves a state
 * that stays put and can be recognised without any timing: the sender's
 * post has returned (in_post clear), its bit is in PIR, and ON is clear
 * while the receiver waits with SN clear. upid.h's argument says that state
 * cannot happen; the pause spreads the posts over the receiver's whole
 * suppress / recognise / restore cycle so that the C steps really race.
 *
 * Only upid.h's functions touch the UPID; the loop runs without the GIL.
 */
#ifndef UINTR_LOOP_PACEDPOST_H
#define UINTR_LOOP_PACEDPOST_H

#include "upid.h"

typedef struct {
    uintr_block_t *block;
    unsigned vector;
    uint64_t count;
    uint64_t max_pause;      /* pause instructions before a post: 0..max_pause */
    uint64_t seed;
    _Atomic int in_post;     /* set before P, cleared after the post returned */
    _Atomic int stop;
    uint64_t codes[4];       /* notify, coalesced, suppressed, refused */
    uint64_t done;
} uintr_paced_post_t;

static inline void uintr_paced_post_run(uintr_paced_post_t *p)
{
    uint64_t bit = (uint64_t)1 << p->vector, x = p->seed | 1, d;
    int rc;
    for (p->done = 0; p->done < p->count; p->done++) {
        while (uintr_upid_pir(p->block) & bit) {     /* not taken yet */
            if (atomic_load(&p->stop))
                return;
            __builtin_ia32_pause();
        }
        x ^= x << 13;                                 /* xorshift64 */
        x ^= x >> 7;
        x ^= x << 17;
        for (d = x % (p->max_pause + 1); d; d--)
            __builtin_ia32_pause();
        atomic_store(&p->in_post, 1);
        rc = uintr_upid_post(p->block, p->vector);
        atomic_store(&p->in_post, 0);
        p->codes[rc < 0 ? 3 : rc]++;
    }
}

#endif
