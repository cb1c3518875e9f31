/*
 * fake_abi.h - TEST-ONLY FAKE of the UINTR instructions and syscalls.
 *
 * Included by uintr_hw.c only when built with -DUINTR_FAKE_ABI, into the
 * module uintr_loop._hardware_fake, which nothing but the tests imports.
 * It lets the backend's control flow and its handler logic run on machines
 * without UINTR. It is a model, not the hardware:
 *   - a "kernel" that answers the syscall numbers of ONE configured ABI
 *     (any other number: -ENOSYS), checks arguments the way the published
 *     code does, logs every call and can be told to fail one operation;
 *   - SENDUIPI sets a bit in a fake UIRR and, when the fake UIF is set,
 *     "delivers" at once, highest vector first, by calling the handler's
 *     body on the SENDING thread (the CPU would run it on the receiver's);
 *   - STUI/CLUI set/clear the fake UIF; STUI delivers what is pending.
 * The eventfd write in the handler body is real in both builds.
 */
#ifndef UINTR_LOOP_FAKE_ABI_H
#define UINTR_LOOP_FAKE_ABI_H

#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define FAKE_LOG_MAX 256
#define FAKE_FDS 1024
#define FAKE_UITT 64

/* uintr_fake_entry_t (uintr_hw.h): what is the op name, or "senduipi",
 * "stui", "clui"; nr is the syscall number (0 for instructions). */

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static const uintr_abi_t *fake_abi = &uintr_abis[1];
static uintr_fake_entry_t fake_log[FAKE_LOG_MAX];
static int fake_nlog;
static int fake_fail_op = -1, fake_fail_errno;
static int fake_uif;
static uint64_t fake_uirr;
static uintr_hw_receiver_t *fake_current;         /* the registered receiver */
/* vector fds: a memfd each, so a dup() of one is recognised by its inode */
static struct { unsigned long ino; int vector; } fake_vfd[FAKE_FDS];
static int fake_nvfd;
static struct { int used; int vector; long tid; } fake_uitt[FAKE_UITT];
static uint64_t fake_faults;                      /* SENDUIPI to a bad index (#GP) */

static void fake_record(const char *what, long nr, long a0, long a1, long result)
{
    if (fake_nlog < FAKE_LOG_MAX) {
        uintr_fake_entry_t *e = &fake_log[fake_nlog++];
        strncpy(e->what, what, sizeof e->what - 1);
        e->nr = nr;
        e->a0 = a0;
        e->a1 = a1;
        e->result = result;
        e->tid = syscall(SYS_gettid);
    }
}

/* Deliver what the fake UIRR holds, highest first (lock held). */
static void fake_deliver(void)
{
    while (fake_uif && fake_uirr && fake_current) {
        unsigned v = 63u - (unsigned)__builtin_clzll(fake_uirr);
        fake_uirr &= ~((uint64_t)1 << v);
        uintr_hw_record(fake_current, v);
    }
}

/* The vector a (possibly duplicated) vector fd stands for, or -1. */
static int fake_vector_of(long fd)
{
    struct stat st;
    if (fd < 0 || fstat((int)fd, &st) < 0)
        return -1;
    for (int i = 0; i < fake_nvfd; i++)
        if (fake_vfd[i].ino == (unsigned long)st.st_ino)
            return fake_vfd[i].vector;
    return -1;
}

static int fake_op_of(long nr)
{
    for (int op = 0; op < UINTR_NOPS; op++)
        if (fake_abi->nr[op] == nr)
            return op;
    return -1;
}

static long fake_kernel(int op, long a0, long a1)
{
    long tid = syscall(SYS_gettid);
    switch (op) {
    case UINTR_OP_REGISTER_HANDLER:
        if (a0 == 0)
            return -EFAULT;
        if ((unsigned long)a1 & ~(unsigned long)fake_abi->handler_flags)
            return -EINVAL;       /* RFC: flags must be 0; branch: WAITING_* only */
        return 0;
    case UINTR_OP_UNREGISTER_HANDLER:
        return a0 ? -EINVAL : 0;
    case UINTR_OP_VECTOR_FD: {
        int fd;
        struct stat st;
        if (a0 < 0 || a0 >= 64 || a1)
            return -EINVAL;
        if (fake_nvfd >= FAKE_FDS)
            return -EMFILE;
        fd = memfd_create("uintr-fake-vector", MFD_CLOEXEC);   /* stands in for it */
        if (fd < 0)
            return -errno;
        fstat(fd, &st);
        fake_vfd[fake_nvfd].ino = (unsigned long)st.st_ino;
        fake_vfd[fake_nvfd].vector = (int)a0;
        fake_nvfd++;
        return fd;
    }
    case UINTR_OP_REGISTER_SENDER: {
        int vector;
        if (a0 < 0 || fcntl((int)a0, F_GETFD) < 0)
            return -EBADF;
        if (a1)
            return -EINVAL;
        vector = fake_vector_of(a0);
        if (vector < 0)
            return -EINVAL;      /* not a vector fd */
        for (int i = 0; i < FAKE_UITT; i++) {
            if (!fake_uitt[i].used) {
                fake_uitt[i].used = 1;
                fake_uitt[i].vector = vector;
                fake_uitt[i].tid = tid;
                return i;
            }
        }
        return -ENOSPC;
    }
    case UINTR_OP_UNREGISTER_SENDER:
        if (a1)
            return -EINVAL;
        if (fake_abi->unregister_sender_by_index) {
            if (a0 < 0 || a0 >= FAKE_UITT || !fake_uitt[a0].used)
                return -EINVAL;
            fake_uitt[a0].used = 0;
            return 0;
        }
        for (int i = 0; i < FAKE_UITT; i++) {   /* RFC: by fd, this thread's UITT */
            if (fake_uitt[i].used && fake_uitt[i].tid == tid &&
                fake_uitt[i].vector == fake_vector_of(a0)) {
                fake_uitt[i].used = 0;
                return 0;
            }
        }
        return -EINVAL;
    case UINTR_OP_WAIT:
        if (fake_abi->wait_takes_usec ? a1 != 0 : a0 != 0)
            return -EINVAL;
        if (fake_uirr) {
            fake_deliver();      /* on the way back to user space, if UIF is set */
            return -EINTR;       /* woken by a user interrupt */
        }
        return 0;                /* branch: timed out; the real RFC call would sleep on */
    }
    return -ENOSYS;
}

static long uintr_fake_syscall(long nr, long a0, long a1)
{
    long r;
    int op;
    pthread_mutex_lock(&fake_lock);
    op = fake_op_of(nr);
    if (op < 0)
        r = -ENOSYS;
    else if (op == fake_fail_op)
        r = -fake_fail_errno;
    else
        r = fake_kernel(op, a0, a1);
    fake_record(op < 0 ? "unknown" : uintr_op_name(op), nr, a0, a1, r);
    pthread_mutex_unlock(&fake_lock);
    return r;
}

static void uintr_fake_senduipi(long index)
{
    pthread_mutex_lock(&fake_lock);
    fake_record("senduipi", 0, index, 0, 0);
    if (index < 0 || index >= FAKE_UITT || !fake_uitt[index].used ||
        (fake_abi->uitt_per_thread && fake_uitt[index].tid != syscall(SYS_gettid))) {
        fake_faults++;           /* the CPU would raise #GP */
    } else {
        fake_uirr |= (uint64_t)1 << fake_uitt[index].vector;
        fake_deliver();
    }
    pthread_mutex_unlock(&fake_lock);
}

static void uintr_fake_uif(int on)
{
    pthread_mutex_lock(&fake_lock);
    fake_record(on ? "stui" : "clui", 0, 0, 0, 0);
    fake_uif = on;
    fake_deliver();
    pthread_mutex_unlock(&fake_lock);
}

static void uintr_fake_handler_entry(void) {}

#define UINTR_SYSCALL(nr, a0, a1) uintr_fake_syscall((nr), (long)(a0), (long)(a1))
#define UINTR_SENDUIPI(index) uintr_fake_senduipi((long)(index))
#define UINTR_STUI() uintr_fake_uif(1)
#define UINTR_CLUI() uintr_fake_uif(0)
#define UINTR_SET_CURRENT(rx) (fake_current = (rx))
#define UINTR_HANDLER_ADDRESS ((long)&uintr_fake_handler_entry)

/* ---- the test module's window onto the fake --------------------------- */

int uintr_fake_configure(const char *abi_name)
{
    const uintr_abi_t *abi = uintr_abi_find(abi_name);
    if (abi == NULL)
        return -EINVAL;
    pthread_mutex_lock(&fake_lock);
    fake_abi = abi;
    fake_nlog = 0;
    fake_fail_op = -1;
    fake_uif = 0;
    fake_uirr = 0;
    fake_current = NULL;
    fake_faults = 0;
    fake_nvfd = 0;
    memset(fake_uitt, 0, sizeof fake_uitt);
    pthread_mutex_unlock(&fake_lock);
    return 0;
}

void uintr_fake_fail(int op, int err)
{
    pthread_mutex_lock(&fake_lock);
    fake_fail_op = op;
    fake_fail_errno = err;
    pthread_mutex_unlock(&fake_lock);
}

int uintr_fake_log_size(void)
{
    return fake_nlog;
}

const uintr_fake_entry_t *uintr_fake_log_entry(int i)
{
    return (i >= 0 && i < fake_nlog) ? &fake_log[i] : NULL;
}

int uintr_fake_uif_state(void)
{
    return fake_uif;
}

uint64_t uintr_fake_uirr(void)
{
    return fake_uirr;
}

uint64_t uintr_fake_faults(void)
{
    return fake_faults;
}

#endif
