/*
 * monitor.h - what the ring-0 test monitor (monitor.c) and the ring-3 test
 * program (user.c) share.
 *
 * The monitor is not Linux. It is the smallest ring-0 set-up that lets the
 * project's own backend code run on the emulated CPU: it programs the UINTR
 * MSRs and the UPID/UITT the way Intel's uintr-linux-kernel branch (v6.0
 * based, syscalls 471..476) does, answers that branch's syscalls (and the
 * 2021 RFC's, 449..454) for one process with one thread per CPU, and offers
 * a few test-only services
 * (numbers from 500) for what only ring 0 can do or see.
 */
#ifndef HWEMU_MONITOR_H
#define HWEMU_MONITOR_H
#include <stdint.h>

#define NCPUS 2

/* Vectors, as in the branch's arch/x86/include/asm/irq_vectors.h. */
#define UINTR_NOTIFICATION_VECTOR 0xec
#define UINTR_KERNEL_VECTOR 0xeb
#define TIMER_VECTOR 0xef
#define SPURIOUS_VECTOR 0xff

/* UINTR MSRs */
#define MSR_IA32_UINTR_RR 0x985
#define MSR_IA32_UINTR_HANDLER 0x986
#define MSR_IA32_UINTR_STACKADJUST 0x987
#define MSR_IA32_UINTR_MISC 0x988
#define MSR_IA32_UINTR_PD 0x989
#define MSR_IA32_UINTR_TT 0x98a

/* The UPID: bit 0 ON, bit 1 SN, bits 23:16 NV, bits 63:32 NDST, then PIR. */
#define UPID_ON 0
#define UPID_SN 1
struct upid {
    volatile uint32_t status;
    volatile uint32_t ndst;
    volatile uint64_t pir;
} __attribute__((aligned(64)));

static inline unsigned upid_nv(const struct upid *u)
{
    return (u->status >> 16) & 0xff;
}

/* A UITT entry: bit 0 valid, bits 15:8 user vector, then the UPID's address. */
struct uitt_entry {
    volatile uint8_t valid;
    volatile uint8_t vector;
    uint8_t reserved[6];
    volatile uint64_t upid;
} __attribute__((aligned(16)));
#define UITT_ENTRIES 256

/* Linux numbers for the calls the backend makes (uintr_hw.c). */
#define SYS_WRITE 1
#define SYS_CLOSE 3
#define SYS_EXIT 60
#define SYS_FCNTL 72
#define SYS_GETTID 186
/* The branch's UINTR syscalls. */
#define SYS_UINTR_REGISTER_HANDLER 471
#define SYS_UINTR_UNREGISTER_HANDLER 472
#define SYS_UINTR_VECTOR_FD 473
#define SYS_UINTR_REGISTER_SENDER 474
#define SYS_UINTR_UNREGISTER_SENDER 475
#define SYS_UINTR_WAIT 476
/* Test-only services. */
#define SYS_DBG_RDMSR 500       /* (msr): a UINTR MSR of this CPU */
#define SYS_DBG_SWITCH_AWAY 501 /* (flag*, mode): switched out until *flag != 0 */
#define SYS_DBG_RETURN 502      /* (mode): the kernel's return-to-user step alone */
#define SYS_DBG_ARM_WAKE 503    /* (blocked*, pending*): log and re-arm wake writes */
#define SYS_DBG_UPID 504        /* (): this thread's UPID */
#define SYS_DBG_UITT 505        /* (): this thread's UITT (the process's, for the branch) */

/* How switch_uintr_return() re-posts a PIR that filled while SN was set. */
#define REPOST_SELF_IPI 0       /* the branch: a self-IPI with the notification vector */
#define REPOST_IN_MEMORY 1      /* the RFC review's ask: PIR -> UIRR without an IPI */

/* The fd the test gives the receiver as its wake eventfd. The monitor logs
 * each 8-byte write to it (from the interrupt handler's raw syscall) with a
 * snapshot of the receiver's `pending` word, and sets `blocked` again so the
 * next handler entry writes too: that gives the order of deliveries. */
#define WAKE_FD 100
#define WAKE_LOG_MAX 128
struct wake_log {
    volatile int n;
    struct {
        uint64_t pending;
        uint64_t value;
        int cpu;
        int from_handler;         /* the write came from inside uintr_hw_handler */
    } e[WAKE_LOG_MAX];
};
extern struct wake_log wake_log;

/* Faults of SENDUIPI in ring 3 (#GP or #UD): counted and skipped. */
extern volatile int senduipi_faults[NCPUS];
extern volatile int senduipi_fault_vector[NCPUS];

/* Check results, shared by both CPUs (updated atomically). */
extern volatile int checks_passed, checks_failed;

void user_main(int cpu);   /* user.c, entered in ring 3 */

#endif
