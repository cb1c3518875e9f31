/*
 * core_harness.c - the compiled core's C headers, alone, for valgrind
 * memcheck (tests/_memcheck.py builds and runs it; `make valgrind`).
 *
 * The extension is these headers plus Cython glue; under the interpreter,
 * memcheck reports drown in CPython's own. Here the headers run stand-alone,
 * with real pthreads and real fds, so every allocation, mapping and
 * descriptor memcheck sees is ours. The program drives each header the way
 * the core does (same call order as port.pxi, receiver.pxi, vectorfd.pxi,
 * preempt.pxi) and checks the results, then releases everything it made:
 * what is left at exit (a leak, an fd) is a bug of the headers. The one
 * resource meant to outlive its users is liveness.h's watcher (a detached
 * thread and its epoll fd, started once per process); the memcheck runner
 * accepts exactly that fd, by its creation stack.
 *
 * Exit status 0 when every check held; 1 (with the failed check on stderr)
 * otherwise.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "busypoll.h"
#include "clock.h"
#include "fdkind.h"
#include "liveness.h"
#include "memfd.h"
#include "notify.h"
#include "preempt.h"
#include "send.h"
#include "stamp.h"
#include "threads.h"
#include "upid.h"
#include "vectorfd.h"

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "core_harness: %s:%d: check failed: %s (errno %d)\n",  \
                    __FILE__, __LINE__, #cond, errno);                             \
            exit(1);                                                               \
        }                                                                          \
    } while (0)

#define SENDERS 5           /* block 0 (the wakeup vector) and blocks 1..4 */
#define POSTS 20000u        /* per sender thread */
#define TABLE_SIZE sizeof(uintr_table_t)

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

static int send_fn(const void *handle)
{
    return uintr_sender_send((uintr_sender_c *)handle);
}

/* A loop's port: the table, its memfd and the notification channel. */
typedef struct {
    uintr_table_t *table;
    int memfd;
    uintr_channel_t channel;
    int epfd;               /* the selector: the eventfd, edge-triggered */
    uint64_t wakeups;       /* vector 0 recognised */
    uint64_t delivered[64]; /* per block: vectors taken from its PIR */
    uint64_t spurious;
    uintr_poll_stats_t polls;
} port_t;

static void port_open(port_t *p)
{
    memset(p, 0, sizeof *p);
    p->table = (uintr_table_t *)uintr_map_table(&p->memfd, TABLE_SIZE);
    CHECK(p->table != NULL);
    CHECK(uintr_channel_open(&p->channel) == 0);
    CHECK(uintr_fd_is_eventfd(p->channel.fd) == 1);
    CHECK(uintr_fd_is_eventfd(p->memfd) == 0);
    uintr_upid_init(&p->table->block[0], 0, 0);
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    CHECK(p->epfd >= 0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = p->channel.fd};
    CHECK(epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->channel.fd, &ev) == 0);
}

static void port_close(port_t *p)
{
    close(p->epfd);
    uintr_channel_close(&p->channel);
    CHECK(p->channel.fd == -1);
    uintr_unmap_table(p->table, TABLE_SIZE, p->memfd);
}

/* Port.dispatch, then Receiver.recognise for each notification vector. */
static void port_dispatch(port_t *p)
{
    uintr_block_t *b0 = &p->table->block[0];
    int had_on = 0;
    if (!uintr_upid_pending(b0))
        return;
    uint64_t bits = uintr_upid_recognise(b0, &had_on);
    if (bits == 0) {
        p->spurious += (uint64_t)had_on;
        return;
    }
    while (bits) {
        unsigned i = uintr_highest(bits);
        bits &= ~((uint64_t)1 << i);
        if (i == UINTR_WAKEUP_VECTOR) {
            p->wakeups++;
            continue;
        }
        uint64_t rbits = uintr_upid_recognise(&p->table->block[i], &had_on);
        p->delivered[i] += (uint64_t)__builtin_popcountll(rbits);
    }
}

/* One iteration of the loop: _UintrSelector.select. */
static void port_iterate(port_t *p, int busy_poll, int timeout_ms)
{
    uintr_block_t *b0 = &p->table->block[0];
    struct epoll_event ev;
    int pending = busy_poll ? uintr_busy_poll(b0, 20000, -1, 0, 0, &p->polls) > 0 : 0;
    if (!pending)
        pending = uintr_upid_restore(b0);        /* clear SN, then look at PIR */
    int n;
    do {
        n = epoll_wait(p->epfd, &ev, 1, pending ? 0 : timeout_ms);
    } while (n < 0 && errno == EINTR);
    CHECK(n >= 0);
    uintr_upid_suppress(b0);                      /* set SN again */
    port_dispatch(p);
}

static void sender_init(uintr_sender_c *s, port_t *p, uint32_t index, uint32_t vector)
{
    memset(s, 0, sizeof *s);
    s->table = p->table;
    s->channel = p->channel;
    s->index = index;
    s->vector = vector;
}

/* Several sender threads post into a receiving "loop" that alternates
 * blocking, polling and busy-polling; then shut-down and closed senders. */
static void check_threads(void)
{
    port_t p;
    uintr_sender_c s[SENDERS];
    native_sender_job job[SENDERS];
    port_open(&p);
    for (uint32_t i = 0; i < SENDERS; i++) {
        if (i) {
            uintr_upid_init(&p.table->block[i], i, 0);
            uintr_upid_restore(&p.table->block[i]);   /* receivers take notifications */
        }
        sender_init(&s[i], &p, i, i ? (i * 13u) % 64u : UINTR_WAKEUP_VECTOR);
        memset(&job[i], 0, sizeof job[i]);
        job[i].handle = &s[i];
        job[i].send = send_fn;
        job[i].count = POSTS;
        job[i].pause_ns = 2000;
        job[i].pause_every = 64u + i;
        CHECK(native_sender_start(&job[i]) == 0);
    }
    for (unsigned it = 0;; it++) {
        int all = 1;
        for (int i = 0; i < SENDERS; i++)
            all &= native_sender_published(&job[i]) == POSTS;
        if (all)
            break;
        port_iterate(&p, it % 4 == 3, 50);
    }
    for (int i = 0; i < SENDERS; i++) {
        native_sender_join(&job[i]);
        CHECK(job[i].error == 0 && job[i].sent == POSTS);
    }
    port_iterate(&p, 0, 0);
    uint64_t c[4];
    for (uint32_t i = 0; i < SENDERS; i++) {
        uintr_block_counters(&p.table->block[i], c);
        if (i)   /* every post counted once; block 0 also counts the notifications */
            CHECK(c[0] + c[1] + c[2] == POSTS && c[3] == 0);
        else
            CHECK(c[0] + c[1] + c[2] >= POSTS);
        CHECK(atomic_load(&p.table->block[i].upid.pir) == 0);   /* nothing left behind */
        if (i)
            CHECK(p.delivered[i] >= 1 && p.delivered[i] <= POSTS);
    }
    CHECK(p.wakeups >= 1);

    /* A closed receiver: later posts are refused, not lost silently. */
    uintr_upid_shutdown(&p.table->block[2]);
    CHECK(uintr_upid_is_shut(&p.table->block[2]));
    CHECK(uintr_sender_send(&s[2]) == -ESHUTDOWN);
    uintr_block_counters(&p.table->block[2], c);
    CHECK(c[3] == 1);
    /* A closed sender. */
    atomic_store(&s[3].closed, 1);
    CHECK(uintr_sender_send(&s[3]) == -EBADF);
    /* A closed loop: the receiver's post asks for a notification, and the
     * notification vector is refused by block 0. */
    uintr_upid_shutdown(&p.table->block[0]);
    CHECK(uintr_sender_send(&s[1]) == -ESHUTDOWN);
    CHECK(uintr_sender_send(&s[0]) == -ESHUTDOWN);
    printf("threads: %d senders x %u posts, wakeups %llu, deliveries %llu/%llu/%llu/%llu, "
           "busy polls %llu (hits %llu), spurious %llu\n",
           SENDERS, POSTS, (unsigned long long)p.wakeups,
           (unsigned long long)p.delivered[1], (unsigned long long)p.delivered[2],
           (unsigned long long)p.delivered[3], (unsigned long long)p.delivered[4],
           (unsigned long long)p.polls.polls, (unsigned long long)p.polls.hits,
           (unsigned long long)p.spurious);
    port_close(&p);
}

/* Channels: open, notify (also with the counter saturated), close. */
static void check_channels(void)
{
    for (int i = 0; i < 500; i++) {
        uintr_channel_t ch = {UINTR_CHANNEL_NONE, -1};
        CHECK(uintr_channel_open(&ch) == 0);
        CHECK(uintr_channel_notify(&ch) == 0);
        if (i == 0) {
            uint64_t v = 0xfffffffffffffffdull;   /* counter at its maximum */
            CHECK(write(ch.fd, &v, sizeof v) == sizeof v);
            CHECK(uintr_channel_notify(&ch) == 0);  /* EAGAIN: an edge is pending */
        }
        uintr_channel_close(&ch);
        CHECK(uintr_channel_notify(&ch) == -EBADF);
        uintr_channel_close(&ch);                   /* idempotent */
    }
    printf("channels: 500 opened, notified, closed\n");
}

/* Vector fds in the owner's process: create, open, lease, send, release. */
static void check_vector_fds(void)
{
    port_t p;
    uintr_peer_set_t peers;
    int reg[2];                              /* the sender registration socket */
    memset(&peers, 0, sizeof peers);
    port_open(&p);
    CHECK(uintr_reg_open(reg) == 0);
    uintr_upid_init(&p.table->block[1], 1, 0);
    uintr_upid_restore(&p.table->block[1]);
    for (int i = 0; i < 100; i++) {
        int peer = -1;
        int vfd = uintr_vfd_create(p.memfd, p.channel.fd, reg[1], 1, 5, TABLE_SIZE, &peer);
        CHECK(vfd >= 0 && peer >= 0);
        CHECK(uintr_peers_add(&peers, 1, peer) == 0);
        CHECK(uintr_peers_hold(&peers, 1) == 1);
        uintr_vfd_opened_t o;
        CHECK(uintr_vfd_open(vfd, TABLE_SIZE, &o) == 0);
        CHECK(o.pidfd == -1 && o.keep_fd >= 0 && o.owner_pid == getpid());
        CHECK(o.hdr.index == 1 && o.hdr.vector == 5);
        int err = 0;
        uintr_lease_t *l = uintr_lease_acquire(o.table_fd, TABLE_SIZE, o.pidfd, -1, o.reg_fd, &err);
        CHECK(l != NULL && err == 0);
        /* a second sender of the same table shares the lease */
        int dup_table = fcntl(o.table_fd, F_DUPFD_CLOEXEC, 0);
        uintr_lease_t *l2 = uintr_lease_acquire(dup_table, TABLE_SIZE, -1, -1, -1, &err);
        CHECK(l2 == l && l->refs == 2);
        close(dup_table);
        close(o.table_fd);                   /* the mapping keeps the table */
        uintr_sender_c s;
        memset(&s, 0, sizeof s);
        s.table = l->table;
        s.channel.kind = UINTR_CHANNEL_EVENTFD;
        s.channel.fd = o.event_fd;
        s.index = o.hdr.index;
        s.vector = o.hdr.vector;
        CHECK(uintr_sender_send(&s) == 0);
        port_iterate(&p, 0, 0);
        uintr_lease_release(l2);
        uintr_lease_release(l);
        close(o.event_fd);
        if (i % 2 == 0) {                    /* the sender goes first, then the fd */
            close(o.keep_fd);
            CHECK(uintr_peers_hold(&peers, 1) == 1);
            close(vfd);
        } else {
            close(vfd);
            CHECK(uintr_peers_hold(&peers, 1) == 1);
            close(o.keep_fd);
        }
        CHECK(uintr_peers_hold(&peers, 1) == 0);   /* released everywhere: forgotten */
    }
    CHECK(p.delivered[1] == 100);
    uint64_t st[4];
    uintr_liveness_state(st);
    CHECK(st[0] == 0);
    /* peers still held at close are closed with the port */
    for (int i = 0; i < 40; i++) {
        int peer = -1;
        int vfd = uintr_vfd_create(p.memfd, p.channel.fd, reg[1], 1 + (unsigned)i % 3, 7, TABLE_SIZE, &peer);
        CHECK(vfd >= 0);
        CHECK(uintr_peers_add(&peers, 1 + (unsigned)i % 3, peer) == 0);
        close(vfd);
    }
    uintr_peers_close(&peers);
    CHECK(peers.n == 0 && peers.fd == NULL);
    close(reg[0]);
    close(reg[1]);
    port_close(&p);
    printf("vector fds: 100 created, opened, leased, sent through, released; 40 peers closed with the port\n");
}

/* Send a message with fds over a SOCK_SEQPACKET pair; return the receiving end. */
static int queued_message(const void *data, size_t len, const int *fds, int nfds)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    struct iovec iov = {(void *)data, len};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(4 * sizeof(int))];
    } ctl;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    memset(&ctl, 0, sizeof ctl);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (nfds) {
        msg.msg_control = ctl.buf;
        msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    CHECK(sendmsg(sv[1], &msg, 0) == (ssize_t)len);
    close(sv[1]);
    return sv[0];
}

/* Everything that is not a vector fd is refused, and the fds a refused
 * message carried are closed (the fd check at exit sees any that is not). */
static void check_bad_vector_fds(void)
{
    int pipefd[2], sv[2];
    uintr_vfd_opened_t o;
    CHECK(pipe2(pipefd, O_CLOEXEC) == 0);
    CHECK(uintr_vfd_open(pipefd[0], TABLE_SIZE, &o) == -ENOTSOCK);
    close(pipefd[0]);
    close(pipefd[1]);
    CHECK(uintr_vfd_open(pipefd[0], TABLE_SIZE, &o) == -EBADF);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    CHECK(uintr_vfd_open(sv[0], TABLE_SIZE, &o) == -EPROTOTYPE);
    close(sv[0]);
    close(sv[1]);
    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    CHECK(uintr_vfd_open(sv[0], TABLE_SIZE, &o) == -ENOMSG);
    close(sv[0]);
    close(sv[1]);

    port_t p;
    port_open(&p);
    int fds[2] = {p.memfd, p.channel.fd};
    uintr_vfd_header_t hdr;
    memset(&hdr, 0, sizeof hdr);
    hdr.magic = 0xdeadbeef;                        /* not a capsule */
    int fd = queued_message(&hdr, sizeof hdr, fds, 2);
    CHECK(uintr_vfd_open(fd, TABLE_SIZE, &o) == -EPROTO);
    close(fd);
    hdr.magic = UINTR_VFD_MAGIC;                   /* a capsule with one fd only */
    hdr.version = UINTR_VFD_VERSION;
    hdr.size = sizeof hdr;
    hdr.index = 1;
    hdr.vector = 3;
    hdr.table_size = TABLE_SIZE;
    fd = queued_message(&hdr, sizeof hdr, fds, 1);
    CHECK(uintr_vfd_open(fd, TABLE_SIZE, &o) == -EPROTO);
    close(fd);
    int unsealed = memfd_create("unsealed", MFD_CLOEXEC);   /* a resizable table */
    CHECK(unsealed >= 0 && ftruncate(unsealed, TABLE_SIZE) == 0);
    int bad_table[2] = {unsealed, p.channel.fd};
    fd = queued_message(&hdr, sizeof hdr, bad_table, 2);
    CHECK(uintr_vfd_open(fd, TABLE_SIZE, &o) == -EPROTO);
    close(fd);
    close(unsealed);
    int swapped[2] = {p.channel.fd, p.memfd};      /* fds in the wrong order */
    fd = queued_message(&hdr, sizeof hdr, swapped, 2);
    CHECK(uintr_vfd_open(fd, TABLE_SIZE, &o) == -EPROTO);
    close(fd);
    int four[4] = {p.memfd, p.channel.fd, p.memfd, p.channel.fd};   /* too many */
    fd = queued_message(&hdr, sizeof hdr, four, 4);
    CHECK(uintr_vfd_open(fd, TABLE_SIZE, &o) == -EPROTO);
    close(fd);
    port_close(&p);
    printf("bad vector fds: 8 kinds refused by name\n");
}

/* Another library's pthread_atfork child handler, registered before any
 * lease (so it runs before ours), that runs the after-fork hook from inside
 * fork() the way uvloop runs Python's at-fork hooks when it spawns. */
static volatile int foreign_atfork_calls_hook;
static int foreign_hook_rc = -1;

static void foreign_atfork_child(void)
{
    if (foreign_atfork_calls_hook)
        foreign_hook_rc = uintr_liveness_after_fork();
}

/* A sender in another process than the owner: the lease watches the owner's
 * pidfd, and the watcher shuts the table down when the owner exits. Here the
 * "other process" is a forked child that owns the table; this process sends. */
static void check_cross_process(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* the owner: a port, a receiver in block 3, a vector fd for it */
        port_t p;
        int peer = -1;
        char c;
        close(sv[0]);
        port_open(&p);
        uintr_upid_init(&p.table->block[3], 3, 0);
        uintr_upid_restore(&p.table->block[3]);
        int reg[2];                          /* the sender registration socket */
        if (uintr_reg_open(reg) < 0)
            _exit(2);
        int vfd = uintr_vfd_create(p.memfd, p.channel.fd, reg[1], 3, 9, TABLE_SIZE, &peer);
        if (vfd < 0)
            _exit(2);
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(sizeof(int))];
        } ctl;
        struct iovec iov = {"v", 1};
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        memset(&ctl, 0, sizeof ctl);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctl.buf;
        msg.msg_controllen = sizeof ctl.buf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &vfd, sizeof(int));
        if (sendmsg(sv[1], &msg, 0) != 1)
            _exit(3);
        close(vfd);
        while (read(sv[1], &c, 1) < 0 && errno == EINTR)   /* until told to exit */
            ;
        _exit(0);
    }
    close(sv[1]);
    char c;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = {&c, 1};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;
    CHECK(recvmsg(sv[0], &msg, MSG_CMSG_CLOEXEC) == 1);
    int vfd;
    memcpy(&vfd, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof vfd);

    uintr_vfd_opened_t o;
    CHECK(uintr_vfd_open(vfd, TABLE_SIZE, &o) == 0);
    CHECK(o.pidfd >= 0 && o.owner_pid == pid && o.hdr.index == 3);
    int err = 0;
    int hupfd = fcntl(o.keep_fd, F_DUPFD_CLOEXEC, 0);
    uintr_lease_t *l = uintr_lease_acquire(o.table_fd, TABLE_SIZE, o.pidfd, hupfd, o.reg_fd, &err);
    CHECK(l != NULL && err == 0);
    close(o.table_fd);
    uint64_t st[4];
    uintr_liveness_state(st);
    CHECK(st[0] == 1 && st[1] == 1 && st[3] == 1);    /* leased, watched, watcher running */
    uintr_sender_c s;
    memset(&s, 0, sizeof s);
    s.table = l->table;
    s.channel.kind = UINTR_CHANNEL_EVENTFD;
    s.channel.fd = o.event_fd;
    s.index = o.hdr.index;
    s.vector = o.hdr.vector;
    for (int i = 0; i < 1000; i++)
        CHECK(uintr_sender_send(&s) == 0);
    /* A fork while the lease is watched, with a foreign child handler that
     * runs before ours and calls the after-fork hook from inside fork(), as
     * uvloop's does: the child must restart its watcher, not hang. */
    foreign_atfork_calls_hook = 1;
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        uintr_liveness_state(st);
        _exit(st[0] == 1 && st[3] == 1 && foreign_hook_rc == 0 ? 0 : 4);
    }
    foreign_atfork_calls_hook = 0;
    int cstatus = 0;
    pid_t reaped = 0;
    uint64_t give_up = uintr_monotonic_ns() + 20000000000ull;   /* a hang fails */
    while ((reaped = waitpid(child, &cstatus, WNOHANG)) == 0 && uintr_monotonic_ns() < give_up)
        sleep_ns(1000000);
    if (reaped == 0) {
        kill(child, SIGKILL);
        waitpid(child, &cstatus, 0);
    }
    CHECK(reaped == child && WIFEXITED(cstatus) && WEXITSTATUS(cstatus) == 0);
    CHECK(write(sv[0], "x", 1) == 1);                 /* the owner exits */
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    uint64_t until = uintr_monotonic_ns() + 10000000000ull;
    while (!uintr_upid_is_shut(&l->table->block[3]) && uintr_monotonic_ns() < until)
        sleep_ns(1000000);
    CHECK(uintr_sender_send(&s) == -ESHUTDOWN);       /* the watcher saw the owner go */
    uintr_liveness_state(st);
    CHECK(st[1] == 0 && st[2] == 1);
    uintr_lease_release(l);
    uintr_liveness_state(st);
    CHECK(st[0] == 0);
    close(o.event_fd);
    close(o.keep_fd);
    close(vfd);
    close(sv[0]);
    /* the owner is gone: opening the vector fd again is refused */
    printf("cross-process: 1000 posts to a forked owner, a fork with the after-fork hook "
           "run inside fork(), then ESHUTDOWN after the owner exited\n");
}

static volatile sig_atomic_t rings;

static void on_ring(int signum)
{
    (void)signum;
    rings++;
}

static int wait_rings(int want)
{
    uint64_t until = uintr_monotonic_ns() + 10000000000ull;
    while (rings < want && uintr_monotonic_ns() < until)
        sleep_ns(100000);
    return rings >= want;
}

/* The preemption timer: the kernel timer rings, the pthread rings (the
 * fallback), an urgent vector rings; then the thread is stopped and joined. */
static void check_preempt(void)
{
    int signum = SIGRTMIN + 4;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_ring;
    CHECK(sigaction(signum, &sa, NULL) == 0);
    CHECK(uintr_preempt_start(signum) == 0);
    CHECK(uintr_preempt_uses_timer());
    uintr_preempt_arm(1, uintr_monotonic_ns() + 2000000);
    CHECK(wait_rings(1));
    uintr_preempt_arm(2, uintr_monotonic_ns() + 1000000000);
    uintr_preempt_disarm();                            /* disarmed: never rings */

    uintr_preempt_thread_only(1);
    CHECK(uintr_preempt_start(signum) == 0);
    CHECK(!uintr_preempt_uses_timer());
    uintr_preempt_arm(3, uintr_monotonic_ns() + 2000000);
    CHECK(wait_rings(2));

    uintr_block_t *b = (uintr_block_t *)aligned_alloc(64, sizeof *b);
    CHECK(b != NULL);
    uintr_upid_init(b, 1, 0);
    uintr_upid_restore(b);
    atomic_fetch_or(&b->upid.pir, (uint64_t)1 << 9);   /* an urgent vector pending */
    int before = rings;
    uintr_preempt_watch(b, (uint64_t)1 << 9);
    CHECK(wait_rings(before + 1));
    uintr_preempt_unwatch(b);
    uint64_t c[4];
    uintr_preempt_counters(c);
    CHECK(c[0] >= 1 && c[3] >= 1);   /* fired counts the thread's deadlines only */
    uintr_preempt_stop();
    uintr_preempt_stop();                              /* idempotent */
    uintr_preempt_thread_only(0);
    free(b);
    signal(signum, SIG_DFL);
    printf("preempt: timer and thread deadlines, urgent rings %llu, stopped\n",
           (unsigned long long)c[3]);
}

/* stamp.h: the latency benchmark's sender, acknowledged per wakeup. */
static void check_stamp(void)
{
    port_t p;
    uintr_sender_c s;
    stamp_job job;
    port_open(&p);
    uintr_upid_init(&p.table->block[1], 1, 0);
    uintr_upid_restore(&p.table->block[1]);
    sender_init(&s, &p, 1, 4);
    memset(&job, 0, sizeof job);
    job.handle = &s;
    job.send = send_fn;
    job.count = 50;
    job.pause_ns = 100000;
    CHECK(stamp_start(&job) == 0);
    uint64_t acked = 0;
    uint64_t until = uintr_monotonic_ns() + 30000000000ull;
    while (acked < job.count && uintr_monotonic_ns() < until) {
        port_iterate(&p, 0, 50);
        while (acked < p.delivered[1]) {
            CHECK(stamp_now_ns() >= stamp_load(&job));
            stamp_ack(&job);
            acked++;
        }
    }
    stamp_join(&job);
    CHECK(job.sent == 50 && job.error == 0 && acked == 50);
    /* stopped early, as a dropped StampSender is: waiting for an ack, or not */
    for (int waiting = 0; waiting < 2; waiting++) {
        memset(&job, 0, sizeof job);
        job.handle = &s;
        job.send = send_fn;
        job.count = 1000000;
        job.pause_ns = 100000;
        /* the last post of the phase before (its sender is joined) may not be
         * delivered yet: take it first, or it would end the wait below before
         * this job has sent anything (seen under load) */
        port_iterate(&p, 0, 0);
        uint64_t seen = p.delivered[1];
        until = uintr_monotonic_ns() + 30000000000ull;   /* each phase its own hang guard */
        CHECK(stamp_start(&job) == 0);
        while (p.delivered[1] == seen && uintr_monotonic_ns() < until)
            port_iterate(&p, 0, 50);
        if (!waiting)
            stamp_ack(&job);
        stamp_stop(&job);
        stamp_join(&job);
        CHECK(job.sent >= 1 && job.sent <= 2 && job.error == 0);
    }
    port_close(&p);
    printf("stamp: 50 stamped wakeups acknowledged; 2 senders stopped early\n");
}

#ifdef HARNESS_INJECT_FAULTS
/* Built only by the memcheck tests, to prove the checks can fail: a block
 * lost, a channel never closed, a branch on memory never written. */
static void inject_faults(void)
{
    uintr_channel_t ch = {UINTR_CHANNEL_NONE, -1};
    volatile char *lost = (char *)malloc(64);
    volatile int *unset = (volatile int *)malloc(sizeof *unset);
    CHECK(lost != NULL && unset != NULL);
    lost[0] = 1;
    lost = NULL;
    CHECK(uintr_channel_open(&ch) == 0);
    if (*unset == 42)
        printf("unset was 42\n");
    free((void *)unset);
    printf("faults injected\n");
}
#endif

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    CHECK(uintr_proc_start_time((int)getpid()) > 0);
    CHECK(pthread_atfork(NULL, NULL, foreign_atfork_child) == 0);
    check_threads();
    check_channels();
    check_vector_fds();
    check_bad_vector_fds();
    check_cross_process();
    check_preempt();
    check_stamp();
#ifdef HARNESS_INJECT_FAULTS
    inject_faults();   /* last: the forked owner must not inherit them */
#endif
    printf("core_harness: ok\n");
    return 0;
}
