/*
 * liveness.h - a sender process's mappings of other processes' UPID tables,
 * and the watch that tells its senders when the receiving process is gone.
 *
 * Why a watch is needed
 * ---------------------
 * A post is memory only; most posts make no syscall at all (coalesced on ON,
 * suppressed on SN). If the receiving process dies, nobody sets the shut-down
 * bit, and a sender could post into an orphaned table for ever, learning
 * nothing. The kernel avoids this because it owns the UPID; here a process
 * that sends to a table it does not own watches the owner instead:
 *
 *  - one lease per (process, table): one shared mapping of the table, one
 *    pidfd of the owner, a count of the senders using it;
 *  - one watcher thread per process (started on first need, never touching
 *    Python, all signals blocked) waits in epoll on every lease's pidfd;
 *  - it also waits for EPOLLHUP on a copy of one of the table's vector fds:
 *    that comes once every copy of the owner's end of it is closed, which
 *    covers an owner that exec'd (its fds are close-on-exec; its pid lives on);
 *  - when a pidfd becomes readable (the owner exited, however: SIGKILL
 *    included, when none of its own clean-up runs) or the vector fd hangs
 *    up, the watcher sets the
 *    shut-down bit on every block of that table. Every later post, by any
 *    sender in any process, returns -ESHUTDOWN through the ordinary post path
 *    (upid.h), whether or not it would have made a syscall.
 *
 * Setting the bit on the dead owner's behalf is safe: the bit is only ever
 * set, never cleared, while any process may still hold the table (a block is
 * re-initialised only by its owner, and only after every vector fd and sender
 * of it is gone; vectorfd.h). Detection latency is the time from the owner's
 * exit to the watcher thread being scheduled: the kernel wakes pidfd waiters
 * as the exit completes; on a loaded machine that is a scheduling delay.
 *
 * Memory safety: the lease's mapping is this process's own MAP_SHARED mapping
 * of the memfd, which keeps the pages alive after the owner is gone, and the
 * memfd is sealed against shrinking, so no access can fault (no SIGBUS). The
 * mapping is removed only when the last sender using it is deallocated.
 *
 * Fork: the watcher thread does not exist in a child. pthread_atfork keeps
 * the lock consistent; the child builds its own epoll set and thread on its
 * next lease or when uintr_liveness_after_fork() is called (the core does so
 * from os.register_at_fork), so senders inherited by a child are watched too.
 */
#ifndef UINTR_LOOP_LIVENESS_H
#define UINTR_LOOP_LIVENESS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "upid.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* Linux 5.3 */
#endif
#ifndef UINTR_REG_MAGIC
#define UINTR_REG_MAGIC 0x47655455u /* as vectorfd.h */
#endif

/* Register this process with a table's owner (vectorfd.h, "The registration
 * socket"): send pidfd, a pidfd of ourselves, through reg_fd, so the owner
 * learns when we exit; the pidfd is closed here. Async-signal-safe (only
 * syscalls): it runs in fork children.
 *
 * When registering fails (pidfd < 0: no pidfd_open, or the owner's queue is
 * full), the owner must poll instead, and must be told so. We set the
 * table's "unwatched" word, then send a record without a pidfd. Either that
 * record is queued, and the owner, who reads the word after draining its
 * queue, sees the word set; or the queue is still full, so the owner has
 * records it has not drained yet, and its drain ends after this instant: it
 * sees the word too. */
static void uintr_register_send(int reg_fd, uintr_table_t *table, int pidfd)
{
    int32_t data[2] = {(int32_t)UINTR_REG_MAGIC, (int32_t)getpid()};
    struct iovec iov = {data, sizeof data};
    struct msghdr msg;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    ssize_t n = -1;
    if (reg_fd < 0) {
        if (pidfd >= 0)
            close(pidfd);
        return;
    }
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (pidfd >= 0) {
        struct cmsghdr *c;
        memset(&ctl, 0, sizeof ctl);
        msg.msg_control = ctl.buf;
        msg.msg_controllen = sizeof ctl.buf;
        c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pidfd, sizeof(int));
        do {
            n = sendmsg(reg_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        close(pidfd);
    }
    if (n >= 0 || errno == EPIPE || errno == ECONNREFUSED)
        return;     /* registered, or the owner's loop is gone: nothing to repair */
    atomic_fetch_or(&table->block[0].unwatched, 1);
    msg.msg_control = NULL;
    msg.msg_controllen = 0;
    do {
        n = sendmsg(reg_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
}

/* A pidfd of this process, or -1 with errno set. */
static inline int uintr_pidfd_self(void)
{
    return (int)syscall(SYS_pidfd_open, getpid(), 0);
}

/* Register from a fork child, where nothing can be refused. */
static void uintr_register_self(int reg_fd, uintr_table_t *table)
{
    if (reg_fd >= 0)
        uintr_register_send(reg_fd, table, uintr_pidfd_self());
}

/* Non-zero once a sender process said it could not register (vectorfd.h). */
static inline uint64_t uintr_table_unwatched(uintr_table_t *t)
{
    return atomic_load(&t->block[0].unwatched);
}

typedef struct uintr_lease {
    struct uintr_lease *next;
    dev_t dev;
    ino_t ino;
    uintr_table_t *table;
    size_t size;
    int pidfd;      /* -1: not watched (the owner is this process, or gone) */
    int hupfd;      /* a copy of one vector fd of the table, or -1 */
    int regfd;      /* the owner's registration socket, or -1 */
    unsigned refs;
    uint64_t id;
} uintr_lease_t;

static pthread_mutex_t uintr_lease_mu = PTHREAD_MUTEX_INITIALIZER;
static uintr_lease_t *uintr_leases;
static uint64_t uintr_lease_next_id = 1;
static int uintr_watch_epfd = -1;
static int uintr_watch_started;
static int uintr_atfork_done;
static uint64_t uintr_owner_deaths; /* tables marked shut by the watcher */

static void uintr_table_shutdown_all(uintr_table_t *t)
{
    for (unsigned i = 0; i < UINTR_TABLE_SLOTS; i++)
        uintr_upid_shutdown(&t->block[i]);
}

static void uintr_lease_unwatch(uintr_lease_t *l)
{
    int *fds[2] = {&l->pidfd, &l->hupfd};
    for (int i = 0; i < 2; i++) {
        if (*fds[i] >= 0) {
            if (uintr_watch_epfd >= 0)
                epoll_ctl(uintr_watch_epfd, EPOLL_CTL_DEL, *fds[i], NULL);
            close(*fds[i]);
            *fds[i] = -1;
        }
    }
}

static int uintr_lease_watch(uintr_lease_t *l)
{
    /* The pidfd is readable when the owner exits; the vector fd reports
     * EPOLLHUP (always reported, never asked for) once every copy of the
     * owner's end is closed: the owner exec'd, or its loop is gone. */
    struct epoll_event in = {.events = EPOLLIN, .data.u64 = l->id};
    struct epoll_event hup = {.events = 0, .data.u64 = l->id};
    if (l->pidfd >= 0 && epoll_ctl(uintr_watch_epfd, EPOLL_CTL_ADD, l->pidfd, &in) < 0)
        return -errno;
    if (l->hupfd >= 0 && epoll_ctl(uintr_watch_epfd, EPOLL_CTL_ADD, l->hupfd, &hup) < 0)
        return -errno;
    return 0;
}

/* Called with the lock held. */
static void uintr_lease_owner_gone(uintr_lease_t *l)
{
    uintr_table_shutdown_all(l->table);
    uintr_lease_unwatch(l);
    uintr_owner_deaths++;
}

static void *uintr_watch_main(void *arg)
{
    int epfd = (int)(intptr_t)arg;
    struct epoll_event ev[16];
    for (;;) {
        int n = epoll_wait(epfd, ev, 16, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return NULL; /* epfd gone (a forked child closed its copy) */
        }
        pthread_mutex_lock(&uintr_lease_mu);
        if (epfd != uintr_watch_epfd) { /* replaced after a fork: retire */
            pthread_mutex_unlock(&uintr_lease_mu);
            return NULL;
        }
        for (int i = 0; i < n; i++)
            for (uintr_lease_t *l = uintr_leases; l; l = l->next)
                if (l->id == ev[i].data.u64 && (l->pidfd >= 0 || l->hupfd >= 0))
                    uintr_lease_owner_gone(l);
        pthread_mutex_unlock(&uintr_lease_mu);
    }
}

/* fork() holds the lock from our prepare handler to our parent/child
 * handler, so the child never inherits a half-changed lease list. But the
 * child handlers run in registration order, and another library's may run
 * first and call back into us: uvloop's runs CPython's at-fork hooks
 * (PyOS_AfterFork_Child) from its own pthread_atfork child handler, before
 * exec'ing a subprocess, and one of those hooks is
 * uintr_liveness_after_fork(), which takes the lock. Taking it there would
 * wait for ever on ourselves. uintr_fork_pending says "our prepare ran and
 * our child handler has not": that call then does the child handler's work
 * first (the child has one thread, so the flag needs no lock). */
static int uintr_fork_pending;

static void uintr_atfork_prepare(void)
{
    pthread_mutex_lock(&uintr_lease_mu);
    uintr_fork_pending = 1;
}
static void uintr_atfork_parent(void)
{
    uintr_fork_pending = 0;
    pthread_mutex_unlock(&uintr_lease_mu);
}
static void uintr_atfork_child(void)
{
    if (!uintr_fork_pending)
        return; /* done already, by uintr_liveness_after_fork() */
    uintr_fork_pending = 0;
    /* The watcher thread is not in the child. Its epoll set is shared with
     * the parent's: drop our copy, build a new one on demand. */
    if (uintr_watch_epfd >= 0)
        close(uintr_watch_epfd);
    uintr_watch_epfd = -1;
    uintr_watch_started = 0;
    /* The child is a new sender process of every table we send to: it may
     * die half way through a post on its own, so the owners must watch it. */
    for (uintr_lease_t *l = uintr_leases; l; l = l->next)
        if (l->regfd >= 0 && !uintr_upid_is_shut(&l->table->block[0]))
            uintr_register_self(l->regfd, l->table);
    pthread_mutex_unlock(&uintr_lease_mu);
}

/* With the lock held: make sure the watcher runs if a lease needs it. */
static int uintr_watch_ensure(void)
{
    int need = 0;
    for (uintr_lease_t *l = uintr_leases; l; l = l->next)
        need |= l->pidfd >= 0 || l->hupfd >= 0;
    if (!need || uintr_watch_started)
        return 0;
    if (!uintr_atfork_done) {
        if (pthread_atfork(uintr_atfork_prepare, uintr_atfork_parent, uintr_atfork_child))
            return -ENOMEM;
        uintr_atfork_done = 1;
    }
    if (uintr_watch_epfd < 0) {
        uintr_watch_epfd = epoll_create1(EPOLL_CLOEXEC);
        if (uintr_watch_epfd < 0)
            return -errno;
        for (uintr_lease_t *l = uintr_leases; l; l = l->next) {
            int rc = uintr_lease_watch(l);
            if (rc < 0)
                return rc;
        }
    }
    pthread_t t;
    pthread_attr_t attr;
    sigset_t all, old;
    int rc;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the thread inherits: no signal lands there */
    rc = pthread_create(&t, &attr, uintr_watch_main, (void *)(intptr_t)uintr_watch_epfd);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc)
        return -rc;
    uintr_watch_started = 1;
    return 0;
}

/* Map table_fd (this process's lease on that table, shared by all its
 * senders), watch pidfd and hupfd (a copy of the vector fd) and register
 * with the owner through regfd (once per table). Ownership of the three fds
 * passes here; pidfd -1: no watch, no registration (the owner is this
 * process). Returns the lease or NULL with *err = -errno. */
static uintr_lease_t *uintr_lease_acquire(int table_fd, size_t size, int pidfd, int hupfd,
                                          int regfd, int *err)
{
    struct stat st;
    uintr_lease_t *l;
    *err = 0;
    if (pidfd < 0 && hupfd >= 0) {
        close(hupfd);
        hupfd = -1;
    }
    if (pidfd < 0 && regfd >= 0) {
        close(regfd);
        regfd = -1;
    }
    if (fstat(table_fd, &st) < 0) {
        *err = -errno;
        if (pidfd >= 0)
            close(pidfd);
        if (hupfd >= 0)
            close(hupfd);
        if (regfd >= 0)
            close(regfd);
        return NULL;
    }
    pthread_mutex_lock(&uintr_lease_mu);
    for (l = uintr_leases; l; l = l->next) {
        if (l->dev == st.st_dev && l->ino == st.st_ino) {
            l->refs++;
            if (pidfd >= 0)
                close(pidfd); /* already watched (or already found dead) */
            if (hupfd >= 0)
                close(hupfd);
            if (regfd >= 0)
                close(regfd); /* already registered */
            pthread_mutex_unlock(&uintr_lease_mu);
            return l;
        }
    }
    /* Our pidfd for the registration (below), first: without a free fd the
     * open is refused before it changed anything (the caller says EMFILE). */
    int self_pidfd = -1;
    if (pidfd >= 0 && regfd >= 0) {
        self_pidfd = uintr_pidfd_self();
        if (self_pidfd < 0 && (errno == EMFILE || errno == ENFILE)) {
            *err = -errno;
            close(pidfd);
            if (hupfd >= 0)
                close(hupfd);
            close(regfd);
            pthread_mutex_unlock(&uintr_lease_mu);
            return NULL;
        }
    }
    l = (uintr_lease_t *)calloc(1, sizeof *l);
    void *p = l ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, table_fd, 0) : NULL;
    if (!l || p == MAP_FAILED) {
        *err = l ? -errno : -ENOMEM;
        free(l);
        if (pidfd >= 0)
            close(pidfd);
        if (hupfd >= 0)
            close(hupfd);
        if (regfd >= 0)
            close(regfd);
        if (self_pidfd >= 0)
            close(self_pidfd);
        pthread_mutex_unlock(&uintr_lease_mu);
        return NULL;
    }
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    l->table = (uintr_table_t *)p;
    l->size = size;
    l->pidfd = pidfd;
    l->hupfd = hupfd;
    l->regfd = regfd;
    l->refs = 1;
    l->id = uintr_lease_next_id++;
    l->next = uintr_leases;
    uintr_leases = l;
    if (pidfd >= 0) {
        if (uintr_watch_epfd >= 0)
            *err = uintr_lease_watch(l);
        if (!*err)
            *err = uintr_watch_ensure();
        if (*err) { /* cannot watch: refuse rather than send blind */
            uintr_leases = l->next;
            uintr_lease_unwatch(l);
            if (regfd >= 0)
                close(regfd);
            if (self_pidfd >= 0)
                close(self_pidfd);
            munmap(p, size);
            free(l);
            l = NULL;
        } else {
            /* before our first post: the owner learns of us (at its next
             * wakeup) before we can leave a post half done */
            uintr_register_send(regfd, l->table, self_pidfd);
        }
    }
    pthread_mutex_unlock(&uintr_lease_mu);
    return l;
}

static void uintr_lease_release(uintr_lease_t *l)
{
    pthread_mutex_lock(&uintr_lease_mu);
    if (--l->refs == 0) {
        for (uintr_lease_t **pp = &uintr_leases; *pp; pp = &(*pp)->next) {
            if (*pp == l) {
                *pp = l->next;
                break;
            }
        }
        uintr_lease_unwatch(l);
        if (l->regfd >= 0)
            close(l->regfd);
        munmap(l->table, l->size);
        free(l);
    }
    pthread_mutex_unlock(&uintr_lease_mu);
}

/* In a forked child: start this process's own watcher if leases need one. */
static int uintr_liveness_after_fork(void)
{
    int rc;
    if (uintr_fork_pending)
        uintr_atfork_child(); /* called from inside fork(): see uintr_fork_pending */
    pthread_mutex_lock(&uintr_lease_mu);
    rc = uintr_watch_ensure();
    pthread_mutex_unlock(&uintr_lease_mu);
    return rc;
}

/* (leases, watched leases, tables found dead, watcher running) */
static void uintr_liveness_state(uint64_t out[4])
{
    pthread_mutex_lock(&uintr_lease_mu);
    out[0] = out[1] = 0;
    for (uintr_lease_t *l = uintr_leases; l; l = l->next) {
        out[0]++;
        out[1] += l->pidfd >= 0;
    }
    out[2] = uintr_owner_deaths;
    out[3] = (uint64_t)uintr_watch_started;
    pthread_mutex_unlock(&uintr_lease_mu);
}

#endif
