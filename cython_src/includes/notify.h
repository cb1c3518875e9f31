/*
 * notify.h - the notification channel: how a notification leaves memory.
 *
 * One interface, one implementation per delivery mode. Software mode: an
 * eventfd the receiving loop waits on (registered edge-triggered, so the loop
 * never has to read it back: every write is a fresh edge, and the counter
 * cannot overflow in any realistic lifetime: 2^64-2 writes). The hardware
 * mode (SENDUIPI to the loop thread) plugs in here.
 *
 * Called with or without the GIL, from any thread; touches no Python object.
 */
#ifndef UINTR_LOOP_NOTIFY_H
#define UINTR_LOOP_NOTIFY_H

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum { UINTR_CHANNEL_NONE = 0, UINTR_CHANNEL_EVENTFD = 1 };

typedef struct {
    int kind;
    int fd;
} uintr_channel_t;

static inline int uintr_channel_open(uintr_channel_t *ch)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    ch->kind = UINTR_CHANNEL_EVENTFD;
    ch->fd = fd;
    return 0;
}

/* Returns 0 or -errno. EAGAIN means the counter is saturated, which means the
 * receiver already has an unconsumed edge: the notification is not needed. */
static inline int uintr_channel_notify(const uintr_channel_t *ch)
{
    uint64_t one = 1;
    ssize_t n;
    if (ch->kind != UINTR_CHANNEL_EVENTFD)
        return -EBADF;
    do {
        n = write(ch->fd, &one, sizeof one);       /* model step W */
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN)
        return -errno;
    return 0;
}

static inline void uintr_channel_close(uintr_channel_t *ch)
{
    if (ch->kind != UINTR_CHANNEL_NONE && ch->fd >= 0)
        close(ch->fd);
    ch->kind = UINTR_CHANNEL_NONE;
    ch->fd = -1;
}

#endif
