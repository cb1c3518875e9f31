/*
 * uintr_hw.h - the hardware backend's interface: the kernel ABI tables, the
 * loop thread's receiver state and the operations the loop and its senders
 * call. Implemented in cython_src/hw/uintr_hw.c, built only where the
 * compiler takes -muintr -mgeneral-regs-only (setup.py probes), and built a
 * second time with -DUINTR_FAKE_ABI into a test-only module where every
 * instruction and syscall below is recorded and simulated (tests/_testcore/fake_abi.h).
 *
 * Nothing here touches Python. The software mode never includes this file.
 */
#ifndef UINTR_LOOP_UINTR_HW_H
#define UINTR_LOOP_UINTR_HW_H

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

/* The operations of both published numberings, in one order. */
enum {
    UINTR_OP_REGISTER_HANDLER = 0,
    UINTR_OP_UNREGISTER_HANDLER,
    UINTR_OP_VECTOR_FD,          /* uintr_create_fd (RFC) / uintr_vector_fd */
    UINTR_OP_REGISTER_SENDER,
    UINTR_OP_UNREGISTER_SENDER,
    UINTR_OP_WAIT,
    UINTR_NOPS
};

/* Handler flags of the later branch (uintr_register_handler). With
 * WAITING_RECEIVER the kernel switches a receiver that sleeps interruptibly
 * to a kernel notification vector, so a SENDUIPI wakes it (its syscall
 * returns -EINTR) and the interrupt is delivered on the way back to user
 * space. The RFC has no flags: only uintr_wait() sleeps are woken there. */
#define UINTR_HANDLER_FLAG_WAITING_RECEIVER 0x1000u
#define UINTR_HANDLER_FLAG_WAITING_SENDER 0x2000u

typedef struct {
    const char *name;                 /* "rfc-v1" or "v6.0-branch" */
    long nr[UINTR_NOPS];
    unsigned handler_flags;           /* passed to uintr_register_handler */
    int unregister_sender_by_index;   /* RFC: (fd, flags); branch: (index, flags) */
    int wait_takes_usec;              /* RFC: wait(flags); branch: wait(usec, flags) */
    int uitt_per_thread;              /* RFC: a sender registers in each thread */
    int kernel_wakes_blocked;         /* branch with WAITING_RECEIVER: yes */
    int no_hardware_errno;            /* what the syscalls say without UINTR */
} uintr_abi_t;

#define UINTR_NABIS 2
/* The kernel ABI table, written once: here. Static and constant, so the core
 * (its probe and capabilities(), with no -muintr) and the hardware backend
 * each compile the same table with no state to share. */
static const uintr_abi_t uintr_abis[UINTR_NABIS] = {
    {
        .name = "rfc-v1",
        .nr = {449, 450, 451, 452, 453, 454},
        .handler_flags = 0,
        .unregister_sender_by_index = 0,
        .wait_takes_usec = 0,
        .uitt_per_thread = 1,
        .kernel_wakes_blocked = 0,
        .no_hardware_errno = EOPNOTSUPP,
    },
    {
        .name = "v6.0-branch",
        .nr = {471, 472, 473, 474, 475, 476},
        .handler_flags = UINTR_HANDLER_FLAG_WAITING_RECEIVER,
        .unregister_sender_by_index = 1,
        .wait_takes_usec = 1,
        .uitt_per_thread = 0,
        .kernel_wakes_blocked = 1,
        .no_hardware_errno = ENOSYS,
    },
};

static const char *const op_names[UINTR_NOPS] = {
    "uintr_register_handler", "uintr_unregister_handler", "uintr_vector_fd",
    "uintr_register_sender", "uintr_unregister_sender", "uintr_wait",
};

static inline const char *uintr_op_name(int op)
{
    return (op >= 0 && op < UINTR_NOPS) ? op_names[op] : "?";
}

static inline const uintr_abi_t *uintr_abi_find(const char *name)
{
    for (int i = 0; i < UINTR_NABIS; i++)
        if (strcmp(uintr_abis[i].name, name) == 0)
            return &uintr_abis[i];
    return NULL;
}


/* The loop thread's receiver. `pending` mirrors UIRR for the loop: the
 * handler ORs the vector in; the loop exchanges it with 0. `blocked` is set
 * by the loop just before it may sleep and cleared right after; whoever
 * exchanges it 1 -> 0 first writes the loop's eventfd once (see uintr_hw.c). */
typedef struct {
    _Atomic uint64_t pending;
    _Atomic int blocked;
    _Atomic int closed;
    int wake_fd;
    int bound;                        /* handler registered for this thread */
    long tid;                         /* that thread */
    unsigned long owner;              /* its pthread_self(): a cheap check per select */
    const uintr_abi_t *abi;
    uint64_t vectors_used;
    int vector_fd[64];                /* -1 where not created */
    /* counters (relaxed): handler entries, wake writes by the handler,
     * wake writes by senders (RFC: the sender pays) */
    _Atomic uint64_t interrupts;
    _Atomic uint64_t handler_wakes;
    _Atomic uint64_t sender_wakes;
} uintr_hw_receiver_t;

typedef struct {
    uintr_hw_receiver_t *rx;          /* kept alive by the owning Python object */
    const uintr_abi_t *abi;
    int fd;                           /* own copy of the vector fd */
    int index;                        /* UITT index (process-wide ABIs) */
    uint64_t id;                      /* key of per-thread registrations (RFC) */
    _Atomic int closed;
    _Atomic uint64_t sent;
} uintr_hw_sender_t;

/* Receiver side: all on the loop thread, except close flags. 0 or -errno. */
int uintr_hw_receiver_init(uintr_hw_receiver_t *rx, const uintr_abi_t *abi, int wake_fd);
int uintr_hw_bind(uintr_hw_receiver_t *rx);          /* register handler + STUI */
int uintr_hw_vector_fd(uintr_hw_receiver_t *rx, unsigned vector);   /* fd or -errno */
int uintr_hw_before_block(uintr_hw_receiver_t *rx);  /* 1: pending, do not block; -EXDEV: wrong thread */
uint64_t uintr_hw_after_block(uintr_hw_receiver_t *rx);   /* take pending */
void uintr_hw_mask(void);                            /* CLUI */
void uintr_hw_unmask(void);                          /* STUI */
int uintr_hw_close(uintr_hw_receiver_t *rx);         /* CLUI, fds, unregister */
long uintr_hw_wait(const uintr_abi_t *abi, uint64_t usec);   /* uintr_wait */

/* The handler's body: what the interrupt handler does with a vector. Only
 * atomics and, when the loop is blocked, one raw write syscall. */
void uintr_hw_record(uintr_hw_receiver_t *rx, uint64_t vector);

/* Sender side: any thread, no GIL, no Python. */
int uintr_hw_sender_init(uintr_hw_sender_t *s, uintr_hw_receiver_t *rx, int vector_fd);
int uintr_hw_send(void *sender);     /* SENDUIPI; 0 or -errno */
int uintr_hw_sender_close(uintr_hw_sender_t *s);

/* Read-outs: counter 0 interrupts, 1 handler wakes, 2 sender wakes. */
uint64_t uintr_hw_counter(uintr_hw_receiver_t *rx, int which);
uint64_t uintr_hw_sender_sent(uintr_hw_sender_t *s);
int uintr_hw_blocked(uintr_hw_receiver_t *rx);
uint64_t uintr_hw_pending(uintr_hw_receiver_t *rx);

#ifdef UINTR_FAKE_ABI
/* The test-only fake's controls (tests/_testcore/fake_abi.h). */
typedef struct {
    char what[32];
    long nr, a0, a1;
    long result;
    long tid;
} uintr_fake_entry_t;
int uintr_fake_configure(const char *abi_name);
void uintr_fake_fail(int op, int err);
int uintr_fake_log_size(void);
const uintr_fake_entry_t *uintr_fake_log_entry(int i);
int uintr_fake_uif_state(void);
uint64_t uintr_fake_uirr(void);
uint64_t uintr_fake_faults(void);
#endif

#endif
