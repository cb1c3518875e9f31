/*
 * vectorfd.h - software-mode vector fds: one file descriptor that carries the
 * right to send one vector to one receiver, across fork and SCM_RIGHTS.
 *
 * The design question
 * -------------------
 * A sender needs two kernel objects: the loop's UPID table (a memfd it maps)
 * and the loop's notification eventfd. A file descriptor names one object,
 * so the vector fd is a container for both: a Unix SOCK_SEQPACKET socket
 * (one end of a socketpair) whose receive queue holds exactly one message,
 * the "capsule":
 *
 *     data:        uintr_vfd_header_t (magic, version, block index, vector,
 *                  table size, the owner's start time)
 *     SCM_RIGHTS:  [table memfd, notification eventfd, registration socket]
 *
 * Opening a sender peeks the capsule (recvmsg with MSG_PEEK): the kernel
 * installs fresh copies of both fds and leaves the message queued, so every
 * holder of the vector fd, in any process, can open senders from it. The
 * socket is an ordinary fd: inherited by fork, passed with SCM_RIGHTS,
 * close-on-exec (as the kernel's vector fds are), and closed like any fd.
 *
 * The owner keeps the other end (the "peer") and shuts the vector fd's
 * sending side, so no holder can queue anything of its own. The peer sees
 * POLLHUP only when every copy of the vector fd, in every process, is closed.
 * Registered senders keep a copy of the vector fd for their lifetime, so
 * POLLHUP on the peer means "no vector fd and no sender of this block exists
 * anywhere": the kernel's reference count on the UPID, observable from
 * user space. The owner reuses a block only after that (see port.pxi).
 *
 * The owner's identity comes from the kernel, not from the capsule: the
 * socketpair's peer credentials (SO_PEERPIDFD, or SO_PEERCRED + pidfd_open
 * checked against the start time recorded in the capsule, so a recycled pid
 * is never taken for the owner). liveness.h watches that pidfd.
 *
 * The registration socket
 * -----------------------
 * A process killed half way through a post leaves ON set with no
 * notification on the way (upid.h); the owner repairs that when it learns the
 * process died. To learn it, each process that opens a sender of the table
 * registers once (per table, and again in each fork child): it sends a pidfd
 * of itself through the registration socket, the client end of a datagram
 * socketpair whose other end the owner's loop watches (vectorfd.pxi). The
 * owner then watches that pidfd: it becomes readable when the process exits,
 * however it exits. A process that cannot register (no pidfd_open, the
 * owner's queue full) says so in the table instead (uintr_register_self) and
 * the owner falls back to looking on a timer. Senders of the owner's own
 * process never register: they cannot die without the loop dying with them.
 *
 * Trust: see docs/design/vector-fds.md ("Trust model of software mode").
 */
#ifndef UINTR_LOOP_VECTORFD_H
#define UINTR_LOOP_VECTORFD_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "fdkind.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5 */
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* Linux 5.3 */
#endif
#ifndef F_GET_SEALS
#define F_GET_SEALS 1034
#define F_SEAL_SHRINK 0x0002
#endif

#define UINTR_VFD_MAGIC 0x46567455u /* "UtVF" */
#define UINTR_VFD_VERSION 2u

typedef struct {
    uint32_t magic;
    uint16_t version;
    uint16_t size;          /* sizeof(uintr_vfd_header_t) */
    uint32_t index;         /* block of the table: the receiver */
    uint32_t vector;        /* 0..63 */
    uint64_t table_size;
    uint64_t owner_start;   /* /proc/<pid>/stat field 22 of the owner, 0 if unknown */
} uintr_vfd_header_t;

_Static_assert(sizeof(uintr_vfd_header_t) == 32, "capsule header is 32 bytes");

/* What a sender gets out of a vector fd. */
typedef struct {
    uintr_vfd_header_t hdr;
    int table_fd;   /* the memfd, to be mapped then closed */
    int event_fd;   /* the notification eventfd */
    int pidfd;      /* the owner's pidfd; -1 when the owner is this process */
    int keep_fd;    /* a copy of the vector fd, held while the sender lives */
    int reg_fd;     /* the owner's registration socket (client end) */
    int owner_pid;
} uintr_vfd_opened_t;

/* Read a small /proc file into buf (NUL-terminated): its length, or <= 0
 * if it cannot be read. */
static inline ssize_t uintr_read_proc(const char *path, char *buf, size_t size)
{
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, size - 1);
    close(fd);
    if (n > 0)
        buf[n] = 0;
    return n;
}

/* Start time of a process (clock ticks after boot), 0 if unreadable. */
static inline uint64_t uintr_proc_start_time(int pid)
{
    char path[64], buf[1024];
    unsigned long long start = 0;
    char *p;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if (uintr_read_proc(path, buf, sizeof buf) <= 0)
        return 0;
    p = strrchr(buf, ')');     /* the command name may hold spaces and ')' */
    if (!p)
        return 0;
    /* after ") " comes field 3 (state); field 22 is 19 fields later */
    p += 2;
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    if (!p || sscanf(p, "%llu", &start) != 1)
        return 0;
    return (uint64_t)start;
}

/* Owner side: make a vector fd for (index, vector) of a table. Returns the
 * fd to hand out, and the peer the owner keeps in *peer_out; or -errno. */
static inline int uintr_vfd_create(int table_fd, int event_fd, int reg_fd, uint32_t index,
                                   uint32_t vector, uint64_t table_size, int *peer_out)
{
    int sv[2], fds[3] = {table_fd, event_fd, reg_fd};
    uintr_vfd_header_t hdr;
    struct iovec iov;
    struct msghdr msg;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof fds)];
    } ctl;
    struct cmsghdr *c;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    memset(&hdr, 0, sizeof hdr);
    hdr.magic = UINTR_VFD_MAGIC;
    hdr.version = UINTR_VFD_VERSION;
    hdr.size = sizeof hdr;
    hdr.index = index;
    hdr.vector = vector;
    hdr.table_size = table_size;
    hdr.owner_start = uintr_proc_start_time((int)getpid());
    iov.iov_base = &hdr;
    iov.iov_len = sizeof hdr;
    memset(&msg, 0, sizeof msg);
    memset(&ctl, 0, sizeof ctl);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;
    c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(c), fds, sizeof fds);
    if (sendmsg(sv[1], &msg, MSG_NOSIGNAL) != (ssize_t)sizeof hdr ||
        shutdown(sv[0], SHUT_WR) < 0) {
        int e = errno ? errno : EIO;
        close(sv[0]);
        close(sv[1]);
        return -e;
    }
    *peer_out = sv[1];
    return sv[0];
}

/* Owner side: 1 when every copy of the vector fd behind this peer is closed. */
static inline int uintr_vfd_peer_released(int peer)
{
    struct pollfd p = {peer, 0, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLNVAL));
}

static inline int uintr_fd_is_eventfd(int fd)
{
    return uintr_fd_is_kind(fd, "anon_inode:[eventfd]", 1);   /* no /proc: accept */
}

static inline void uintr_close_received(struct msghdr *msg)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int *fds = (int *)CMSG_DATA(c);
            for (size_t i = 0; i < n; i++)
                close(fds[i]);
        }
    }
}

/* The owner's pidfd, or -1 (owner is this process) in *pidfd_out; 0 or
 * -ESHUTDOWN (owner gone) or -errno. */
static inline int uintr_vfd_owner(int fd, const uintr_vfd_header_t *hdr, int *pid_out,
                                  int *pidfd_out)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    int pidfd;
    *pidfd_out = -1;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return -errno;
    *pid_out = cred.pid;
    if (cred.pid == getpid())
        return 0;
    if (cred.pid <= 0)
        return -ESRCH; /* the owner's pid namespace is not visible from here */
    len = sizeof pidfd;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0) {
        /* the kernel's own reference: no pid reuse race */
        goto check;
    }
    if (errno == ESRCH)
        return -ESHUTDOWN;
    /* Before Linux 6.5: open the pid, then make sure it is still the owner
     * (a pid recycled since the owner died has another start time). */
    pidfd = (int)syscall(SYS_pidfd_open, cred.pid, 0);
    if (pidfd < 0)
        return errno == ESRCH ? -ESHUTDOWN : -errno;
    if (hdr->owner_start && uintr_proc_start_time(cred.pid) != hdr->owner_start) {
        close(pidfd);
        return -ESHUTDOWN;
    }
    fcntl(pidfd, F_SETFD, FD_CLOEXEC);
check:
    {
        /* A pidfd is readable once its process has exited. */
        struct pollfd p = {pidfd, POLLIN, 0};
        if (poll(&p, 1, 0) == 1) {
            close(pidfd);
            return -ESHUTDOWN;
        }
    }
    *pidfd_out = pidfd;
    return 0;
}

/*
 * Sender side: open a vector fd. Returns 0, or one of
 *   -EBADF      fd is not open
 *   -ENOTSOCK   fd is not a socket (a file, pipe, eventfd...)
 *   -EPROTOTYPE a socket, but not a Unix SOCK_SEQPACKET one
 *   -ENOMSG     no capsule queued (not a vector fd, or a holder consumed it)
 *   -EPROTO     the queued message is not a capsule of this version
 *   -EMFILE     this process has no room for the capsule's fds (or -ENFILE)
 *   -ESHUTDOWN  the receiving process is gone
 *   -errno      anything else the kernel said
 */
static inline int uintr_vfd_open(int fd, uint64_t table_size, uintr_vfd_opened_t *out)
{
    struct stat st;
    int type = 0, domain = 0, got[3] = {-1, -1, -1}, nfds = 0, rc;
    socklen_t len = sizeof type;
    struct iovec iov;
    struct msghdr msg;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(8 * sizeof(int))];
    } ctl;
    ssize_t n;

    memset(out, 0, sizeof *out);
    out->table_fd = out->event_fd = out->pidfd = out->keep_fd = out->reg_fd = -1;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISSOCK(st.st_mode))
        return -ENOTSOCK;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return -errno;
    len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
        return -errno;
    if (domain != AF_UNIX || type != SOCK_SEQPACKET)
        return -EPROTOTYPE;

    iov.iov_base = &out->hdr;
    iov.iov_len = sizeof out->hdr;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;
    do {
        n = recvmsg(fd, &msg, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) /* nothing queued, or a socket that cannot hold anything (unconnected, listening) */
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN || errno == EINVAL)
                   ? -ENOMSG : -errno;
    if (n == 0 && msg.msg_controllen == 0)
        return -ENOMSG;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int *fds = (int *)CMSG_DATA(c);
            for (size_t i = 0; i < k; i++) {
                if (nfds < 3)
                    got[nfds] = fds[i];
                nfds++;
            }
        }
    }
    if (n == (ssize_t)sizeof out->hdr && (msg.msg_flags & MSG_CTRUNC) && nfds < 3 &&
        out->hdr.magic == UINTR_VFD_MAGIC && out->hdr.version == UINTR_VFD_VERSION) {
        /* A capsule whose fds the kernel could not all install here: it
         * stops at the first it cannot (fd table full: EMFILE) and reports
         * only MSG_CTRUNC. Name the cause if it is the fd table, which this
         * probe (taken while what was installed is still open) shows. */
        int probe = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        int e = probe < 0 ? errno : 0;
        if (probe >= 0)
            close(probe);
        uintr_close_received(&msg);
        return (e == EMFILE || e == ENFILE) ? -e : -EPROTO;
    }
    if (n != (ssize_t)sizeof out->hdr || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
        nfds != 3 || out->hdr.magic != UINTR_VFD_MAGIC ||
        out->hdr.version != UINTR_VFD_VERSION || out->hdr.size != sizeof out->hdr ||
        out->hdr.vector >= 64 || out->hdr.index >= 64 || out->hdr.table_size != table_size) {
        uintr_close_received(&msg);
        return -EPROTO;
    }
    /* The table must be a memfd that nobody can shrink (a shrunk shared
     * mapping raises SIGBUS on access), the channel an eventfd and the
     * registration end a socket. */
    if (fstat(got[0], &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < table_size ||
        (rc = fcntl(got[0], F_GET_SEALS)) < 0 || !(rc & F_SEAL_SHRINK) ||
        !uintr_fd_is_eventfd(got[1]) || fstat(got[2], &st) < 0 || !S_ISSOCK(st.st_mode)) {
        uintr_close_received(&msg);
        return -EPROTO;
    }
    out->table_fd = got[0];
    out->event_fd = got[1];
    out->reg_fd = got[2];
    rc = uintr_vfd_owner(fd, &out->hdr, &out->owner_pid, &out->pidfd);
    if (rc == 0) {
        out->keep_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (out->keep_fd < 0)
            rc = -errno;
    }
    if (rc < 0) {
        close(got[0]);
        close(got[1]);
        close(got[2]);
        if (out->pidfd >= 0)
            close(out->pidfd);
        out->table_fd = out->event_fd = out->pidfd = out->reg_fd = -1;
        return rc;
    }
    return 0;
}

#define UINTR_REG_MAGIC 0x47655455u /* "UTeG" */

/* Owner side: the registration socketpair, [0] the owner's end, [1] the
 * client end every capsule carries. A stream, not datagrams: a Unix datagram
 * or seqpacket receiver queues at most net.unix.max_dgram_qlen messages (10
 * by default), too few for a burst of sender processes starting before the
 * owner's loop runs; a stream is bounded by the socket buffer (hundreds of
 * 8-byte records). Each record goes in one sendmsg, with its pidfd, and the
 * kernel never merges a record carrying fds with the next on receipt. */
static inline int uintr_reg_open(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0)
        return -errno;
    shutdown(fds[0], SHUT_WR);  /* the owner only reads */
    shutdown(fds[1], SHUT_RD);  /* the holders only write */
    return 0;
}

/* Owner side: the pid a pidfd refers to (its fdinfo), -1 if the process
 * has exited (Linux >= 5.17 says so there), 0 if the kernel does not say. */
static inline int uintr_pidfd_pid(int pidfd)
{
    char path[64], buf[512];
    int pid = 0;
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
    if (uintr_read_proc(path, buf, sizeof buf) <= 0)
        return 0;
    char *p = strstr(buf, "\nPid:");
    if (!p || sscanf(p + 5, "%d", &pid) != 1)
        return 0;
    return pid;
}

/* Owner side: take one registration message. Returns 1 with a pidfd in
 * *pidfd_out (the sender process's) and its pid in *pid_out (-1: already
 * exited), 2 for a message without one (a process that could not register,
 * or anything that is not a pidfd: the owner falls back to its timer), 0
 * when nothing is queued, or -errno. */
static inline int uintr_reg_take(int fd, int *pidfd_out, int *pid_out)
{
    int32_t data[2];
    struct iovec iov = {data, sizeof data};   /* one record: a stream (see uintr_reg_open) */
    struct msghdr msg;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(4 * sizeof(int))];
    } ctl;
    ssize_t n;
    int got = -1, extra = 0;
    *pidfd_out = -1;
    *pid_out = 0;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;
    do {
        n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
    if (n == 0)
        return -EPIPE;  /* every client end closed: cannot happen while we hold one */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int *fds = (int *)CMSG_DATA(c);
            for (size_t i = 0; i < k; i++) {
                if (got < 0)
                    got = fds[i];
                else {
                    close(fds[i]);
                    extra = 1;
                }
            }
        }
    }
    if (n != (ssize_t)sizeof data || data[0] != (int32_t)UINTR_REG_MAGIC)
        extra = 1;      /* a torn or foreign record: trust nothing, poll */
    /* only a pidfd's fdinfo has a Pid: line */
    if (got >= 0 && (extra || (*pid_out = uintr_pidfd_pid(got)) == 0)) {
        close(got);     /* not what a sender sends: treat as "watch me on a timer" */
        got = -1;
    }
    if (got < 0)
        return 2;
    *pidfd_out = got;
    return 1;
}

/* The owner's record of the peers of the vector fds it made, per block. */
typedef struct {
    int *fd;
    uint32_t *slot;
    size_t n, cap;
} uintr_peer_set_t;

static inline int uintr_peers_add(uintr_peer_set_t *s, uint32_t slot, int fd)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        int *f = (int *)realloc(s->fd, cap * sizeof *f);
        if (!f)
            return -ENOMEM;
        s->fd = f;
        uint32_t *sl = (uint32_t *)realloc(s->slot, cap * sizeof *sl);
        if (!sl)
            return -ENOMEM;
        s->slot = sl;
        s->cap = cap;
    }
    s->fd[s->n] = fd;
    s->slot[s->n] = slot;
    s->n++;
    return 0;
}

/* 1 if some vector fd or sender of this block may still exist anywhere.
 * Peers whose every copy is closed are closed and forgotten. */
static inline int uintr_peers_hold(uintr_peer_set_t *s, uint32_t slot)
{
    int held = 0;
    size_t i = 0;
    while (i < s->n) {
        if (s->slot[i] == slot) {
            if (uintr_vfd_peer_released(s->fd[i])) {
                close(s->fd[i]);
                s->n--;
                s->fd[i] = s->fd[s->n];
                s->slot[i] = s->slot[s->n];
                continue;
            }
            held = 1;
        }
        i++;
    }
    return held;
}

static inline void uintr_peers_close(uintr_peer_set_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        close(s->fd[i]);
    free(s->fd);
    free(s->slot);
    s->fd = NULL;
    s->slot = NULL;
    s->n = s->cap = 0;
}

#endif
