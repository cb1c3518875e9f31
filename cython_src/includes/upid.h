/*
 * upid.h - the user posted-interrupt descriptor (UPID) and the SENDUIPI
 * protocol, in C11 atomics. Software delivery runs exactly these steps; the
 * hardware runs them in microcode (see shared UINTR notes, "SENDUIPI" and
 * "Receiving").
 *
 * Layout
 * ------
 * A UPID is 16 bytes as in the SDM: status (bit 0 ON, bit 1 SN, bits 23:16
 * NV, bits 63:32 NDST) and the 64-bit PIR. We keep each UPID at the start of
 * its own 64-byte block (the hardware wants 64-byte alignment; we also want
 * one cache line per receiver) followed by the senders' counters, which live
 * beside the UPID because senders touch that line anyway.
 *
 * A loop owns one page of 64 blocks, the "UPID table". Block 0 is the loop's
 * own UPID: vector 0 of it is the loop's wakeup (call_soon_threadsafe), and
 * vector i (1..63) is the notification vector NV of the Receiver in block i.
 * So a Receiver's notification is itself a post: NV=i to NDST=the loop, the
 * way a hardware notification is an interrupt with vector NV sent to CPU
 * NDST. The loop's block 0 is the only one whose notification leaves memory
 * (an eventfd write, see notify.h). Offsets, never pointers, connect the
 * blocks, so the page can be shared with other processes later.
 *
 * Why the protocol cannot lose a post
 * -----------------------------------
 * Sender (post):       P: PIR |= 1<<v          (locked RMW)
 *                      R: s = status            (load; then CAS ON in)
 *                      if !ON && !SN: CAS s -> s|ON; on success, notify.
 * Receiver (recognise): C: status &= ~ON        (locked RMW)
 *                      X: bits = xchg(PIR, 0)   (locked RMW)
 * Receiver (restore):   U: status &= ~SN        (locked RMW)
 *                      L: pending = PIR != 0    (load)
 *
 * Every access is seq_cst, so all of them fall into one total order S.
 * The hardware does P..R as one locked operation on the UPID; we cannot (the
 * two words would need cmpxchg16b on every send), so the argument has to
 * hold for any interleaving of P and R with C, X, U, L:
 *  - P before X: the bit is taken by this X or an earlier one. Nothing lost.
 *  - P after X: then R is after C (P<R, X after C), so R sees ON as C left it
 *    unless another sender set ON again after C; that sender notifies, and
 *    the receiver's next C', X' come after that notification is seen, hence
 *    after our R, hence after our P: X' takes the bit. If nobody set ON, R
 *    sees ON clear and, SN permitting, we set ON and notify ourselves.
 *  - SN set at R: we send nothing. The receiver clears SN (U) before it may
 *    block and then loads PIR (L). Either R < U in S, and then P < R < U < L,
 *    so L sees the bit and the receiver does not block; or U < R, and then R
 *    does not see SN. This is the store-buffer pattern: it needs seq_cst on
 *    both sides (on x86 the locked instructions give it), which is also why
 *    the kernel review insisted SN be set and cleared with locked operations.
 *  - The price of the split: a sender whose P lands between C and X has its
 *    bit taken by X and still sees ON clear, so it notifies. The receiver
 *    then finds ON set and PIR empty: a spurious notification, counted as
 *    such, never a lost one.
 * At most one notification is outstanding per UPID: ON goes 0->1 only by a
 * successful CAS, and only that sender notifies; it goes 1->0 only in C.
 *
 * The model: cython_src/model/delivery.pml states this protocol in Promela,
 * with three senders, SN toggled by the loop and by a task receiver, masking
 * and close, and spin checks every interleaving (make verify). Each line of
 * the core that a model step mirrors is marked "model step <letter>" (the
 * letters above, and S suppress, Q pending, D shut down, B busy-poll, W the
 * eventfd write, E epoll taking its edge, M and T the mailbox); the model
 * marks its lines "step <letter>", and tests/test_model.py keeps the two
 * lists equal. Change a marked line and the model must change with it.
 *
 * Shut down (software only): reserved status bit 2. Once set, it is never
 * cleared; every later post fails with -ESHUTDOWN (the kernel ABI's error
 * for a receiver that is gone) instead of vanishing. The owner sets it when
 * it closes a receiver or its loop; with senders in other processes, a
 * sender process's liveness watcher also sets it on every block of a table
 * whose owner has exited (liveness.h). Either writer is fine because the bit
 * only ever goes 0 -> 1, and a block is re-initialised (uintr_upid_init,
 * the one place that clears it) only by its owner and only once no vector
 * fd or sender of that block exists in any process (vectorfd.h).
 *
 * Senders in other processes add one hazard threads do not have: a process
 * can die between two steps. Killed after its successful CAS of ON and
 * before it notifies, it leaves ON set with no notification on the way, and
 * later posts coalesce on it. Nothing is lost (the bits are in PIR), but
 * nobody is woken; the loop repairs this when it learns that the process
 * died (its pidfd, vectorfd.pxi), by doing what the missing notification
 * would have done (C then X), which the argument above shows is always safe:
 * at worst a later notification finds PIR empty and is counted as spurious.
 */
#ifndef UINTR_LOOP_UPID_H
#define UINTR_LOOP_UPID_H

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

#define UINTR_NVEC 64u
#define UINTR_TABLE_SLOTS 64u
#define UINTR_WAKEUP_VECTOR 0u

#define UINTR_ON ((uint64_t)1 << 0)
#define UINTR_SN ((uint64_t)1 << 1)
#define UINTR_SHUT ((uint64_t)1 << 2)
#define UINTR_NV_SHIFT 16
#define UINTR_NDST_SHIFT 32

typedef struct {
    _Atomic uint64_t status;
    _Atomic uint64_t pir;
} uintr_upid_t;

typedef struct {
    uintr_upid_t upid;
    /* written by senders (relaxed: statistics, not synchronisation) */
    _Atomic uint64_t notifications;
    _Atomic uint64_t coalesced;
    _Atomic uint64_t suppressed;
    _Atomic uint64_t refused;
    /* block 0 only: non-zero once a sender process could not register
     * itself with the owner (vectorfd.h), which then repairs on a timer */
    _Atomic uint64_t unwatched;
    uint64_t _reserved;
} __attribute__((aligned(64))) uintr_block_t;

typedef struct {
    uintr_block_t block[UINTR_TABLE_SLOTS];
} uintr_table_t;

_Static_assert(sizeof(uintr_upid_t) == 16, "a UPID is 16 bytes");
_Static_assert(sizeof(uintr_block_t) == 64, "one block per cache line");
_Static_assert(sizeof(uintr_table_t) == 4096, "one page of blocks");

enum {
    UINTR_POST_NOTIFY = 0,     /* this post set ON: the caller must notify */
    UINTR_POST_COALESCED = 1,  /* ON was already set */
    UINTR_POST_SUPPRESSED = 2, /* SN was set */
};

#define UINTR_RELAXED memory_order_relaxed

/* SENDUIPI steps 2-3. Returns UINTR_POST_* or -ESHUTDOWN. */
static inline int uintr_upid_post(uintr_block_t *b, unsigned vector)
{
    uint64_t s;
    atomic_fetch_or(&b->upid.pir, (uint64_t)1 << vector);  /* model step P */
    s = atomic_load(&b->upid.status);                       /* model step R */
    for (;;) {
        if (s & UINTR_SHUT) {
            atomic_fetch_add_explicit(&b->refused, 1, UINTR_RELAXED);
            return -ESHUTDOWN;
        }
        if (s & UINTR_ON) {
            atomic_fetch_add_explicit(&b->coalesced, 1, UINTR_RELAXED);
            return UINTR_POST_COALESCED;
        }
        if (s & UINTR_SN) {
            atomic_fetch_add_explicit(&b->suppressed, 1, UINTR_RELAXED);
            return UINTR_POST_SUPPRESSED;
        }
        /* model step CAS */
        if (atomic_compare_exchange_weak(&b->upid.status, &s, s | UINTR_ON)) {
            atomic_fetch_add_explicit(&b->notifications, 1, UINTR_RELAXED);
            return UINTR_POST_NOTIFY;
        }
        /* s was reloaded by the failed CAS */
    }
}

/* Notification processing: C then X. *had_on tells whether a notification
 * was outstanding (ON set and PIR empty is a spurious notification). */
static inline uint64_t uintr_upid_recognise(uintr_block_t *b, int *had_on)
{
    uint64_t old = atomic_fetch_and(&b->upid.status, ~UINTR_ON); /* model step C */
    *had_on = (old & UINTR_ON) != 0;
    return atomic_exchange(&b->upid.pir, 0);                /* model step X */
}

/* Cheap test before recognise: plain loads, no locked operation. A post that
 * lands after these loads is not missed: it either sees SN (the caller holds
 * SN while it runs) and stays in PIR for the next restore, or it notifies. */
static inline int uintr_upid_pending(uintr_block_t *b)
{
    return (atomic_load(&b->upid.status) & UINTR_ON) != 0 ||    /* model step Q */
           atomic_load(&b->upid.pir) != 0;
}

/* switch_uintr_prepare: set SN with a locked operation (a sender may be
 * reading status concurrently). */
static inline void uintr_upid_suppress(uintr_block_t *b)
{
    atomic_fetch_or(&b->upid.status, UINTR_SN);             /* model step S */
}

/* switch_uintr_return: clear SN with a locked operation (U), then look at
 * PIR (L). Non-zero means something was posted while suppressed: the caller
 * must not block (the "re-post", done in memory as the review asked). */
static inline int uintr_upid_restore(uintr_block_t *b)
{
    atomic_fetch_and(&b->upid.status, ~UINTR_SN);          /* model step U */
    return atomic_load(&b->upid.pir) != 0;                  /* model step L */
}

static inline void uintr_upid_shutdown(uintr_block_t *b)
{
    atomic_fetch_or(&b->upid.status, UINTR_SHUT);           /* model step D */
}

static inline int uintr_upid_is_shut(uintr_block_t *b)
{
    return (atomic_load(&b->upid.status) & UINTR_SHUT) != 0;
}

/* A fresh block: SN set (a receiver is "switched out" until its loop runs),
 * NV and NDST filled in, counters zero. Called before any sender can see it. */
static inline void uintr_upid_init(uintr_block_t *b, unsigned nv, uint32_t ndst)
{
    atomic_store(&b->upid.pir, 0);
    atomic_store(&b->notifications, 0);
    atomic_store(&b->coalesced, 0);
    atomic_store(&b->suppressed, 0);
    atomic_store(&b->refused, 0);
    atomic_store(&b->upid.status, UINTR_SN | ((uint64_t)(nv & 0xff) << UINTR_NV_SHIFT) |
                                      ((uint64_t)ndst << UINTR_NDST_SHIFT));
}

static inline uint64_t uintr_upid_status(uintr_block_t *b)
{
    return atomic_load(&b->upid.status);
}

/* The whole PIR, for tests and diagnostics (the protocol itself only ever
 * takes it with X or tests it with L). */
static inline uint64_t uintr_upid_pir(uintr_block_t *b)
{
    return atomic_load(&b->upid.pir);
}

/* The senders' counters of one block: notifications, coalesced, suppressed,
 * refused. Relaxed loads: statistics, not synchronisation. */
static inline void uintr_block_counters(uintr_block_t *b, uint64_t out[4])
{
    out[0] = atomic_load_explicit(&b->notifications, UINTR_RELAXED);
    out[1] = atomic_load_explicit(&b->coalesced, UINTR_RELAXED);
    out[2] = atomic_load_explicit(&b->suppressed, UINTR_RELAXED);
    out[3] = atomic_load_explicit(&b->refused, UINTR_RELAXED);
}

/* Highest pending vector (63 is the highest priority); bits must be non-zero. */
static inline unsigned uintr_highest(uint64_t bits)
{
    return 63u - (unsigned)__builtin_clzll(bits);
}

#endif
