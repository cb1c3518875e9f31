/*
 * send.h - a registered sender and the send path (SENDUIPI in software).
 *
 * A sender is the analogue of a UITT entry: which UPID (a block of a loop's
 * table), which vector, and the channel that carries the loop's notification.
 * It holds no Python object and needs no GIL: native threads call
 * uintr_sender_send() directly. The Python object that owns the struct keeps
 * the table and the channel alive (the table is unmapped and the eventfd
 * closed only when the last owner is gone), so a sender can never write into
 * freed memory or a recycled fd. For a sender in the loop's process that is
 * the Receiver (and so the loop's port); for one opened from a vector fd it
 * is a lease: this process's own mapping of the table and its own copy of
 * the eventfd (vectorfd.pxi). Either stays valid after the receiving process
 * is gone: the mapping keeps the pages (the memfd is sealed, so no holder can
 * shrink it under us: no SIGBUS), an eventfd write with no reader left just
 * bumps a counter, and the shut-down bit (set by the owner, or by our
 * liveness watcher when the owner exits) turns every later post into
 * -ESHUTDOWN. The send path itself is unchanged across processes.
 */
#ifndef UINTR_LOOP_SEND_H
#define UINTR_LOOP_SEND_H

#include "notify.h"
#include "upid.h"

/* hardware mode: the CPU carried the interrupt; nothing for the caller to
 * notify (UINTR_POST_NOTIFY is 0, so a plain 0 would mean "notify") */
#define UINTR_POST_SENT 3

typedef struct {
    uintr_table_t *table;
    uintr_channel_t channel;
    uint32_t index;  /* block in the table; 0 is the loop's own UPID */
    uint32_t vector;
    _Atomic int closed;
    /* hardware mode: SENDUIPI through the hardware backend (uintr_hw.h);
     * NULL in software mode */
    int (*hw_send)(void *ctx);
    void *hw_ctx;
} uintr_sender_c;

/* The memory half: post to the receiver's UPID and, when that asks for a
 * notification, post its NV to the loop's UPID. Returns UINTR_POST_NOTIFY
 * when the caller must notify the channel, another UINTR_POST_* otherwise,
 * or -ESHUTDOWN (receiver or its loop gone), -EBADF (sender closed). */
static inline int uintr_sender_post(uintr_sender_c *s)
{
    int r;
    if (atomic_load_explicit(&s->closed, memory_order_relaxed))
        return -EBADF;
    if (s->hw_send != NULL) {   /* the interrupt travels in hardware: no notify */
        if (uintr_upid_is_shut(&s->table->block[s->index]) ||
            uintr_upid_is_shut(&s->table->block[0]))
            return -ESHUTDOWN;
        r = s->hw_send(s->hw_ctx);
        return r < 0 ? r : UINTR_POST_SENT;
    }
    r = uintr_upid_post(&s->table->block[s->index], s->vector);
    if (r != UINTR_POST_NOTIFY || s->index == 0)
        return r;
    return uintr_upid_post(&s->table->block[0], s->index);
}

/* The whole send: memory, then (rarely) the syscall. 0 on success. */
static inline int uintr_sender_send(uintr_sender_c *s)
{
    int r = uintr_sender_post(s);
    if (r == UINTR_POST_NOTIFY)
        return uintr_channel_notify(&s->channel);
    return r < 0 ? r : 0;
}

#endif
