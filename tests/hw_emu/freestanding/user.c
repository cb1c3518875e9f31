/*
 * user.c - the ring-3 half of the freestanding UINTR test: the checks.
 *
 * Everything here runs in ring 3 on the emulated CPU. The interrupt handler
 * is the project's own uintr_hw_handler (cython_src/hw/uintr_hw.c, built
 * with the project's flags: -muintr -mgeneral-regs-only -fPIC -O2), entered
 * by the CPU and left by its UIRET; receivers, senders, masking and
 * uintr_wait go through the backend's functions too (uintr_hw_bind,
 * uintr_hw_vector_fd, uintr_hw_sender_init, uintr_hw_send, uintr_hw_mask,
 * uintr_hw_unmask, uintr_hw_wait, uintr_hw_close), whose syscalls the test
 * monitor answers the way the uintr-linux-kernel branch does.
 *
 * How the order of deliveries is seen without changing the handler: the
 * handler writes the receiver's wake fd whenever it finds `blocked` set.
 * The monitor logs each such write with the receiver's `pending` word at that
 * moment and sets `blocked` again, so the log is the sequence of pending
 * sets after each handler entry: the vector each entry added is the
 * handler's argument, and their order is the delivery order.
 *
 * Each check prints one line "CHECK <name> PASS|FAIL <detail>".
 */
#include <stdarg.h>
#include <stdint.h>
#include <cpuid.h>
#include <x86gprintrin.h>

#include "fmt.h"
#include "monitor.h"
#include "uintr_hw.h"

#define FAULTS_GP 13

/* The kernel ABI the backend uses in this image: the branch's numbering by
 * default, the RFC's with -DHWEMU_ABI_RFC (the Makefile builds both). */
#ifdef HWEMU_ABI_RFC
#define HWEMU_ABI "rfc-v1"
#else
#define HWEMU_ABI "v6.0-branch"
#endif

static long sys(long nr, long a0, long a1)
{
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "0"(nr), "D"(a0), "S"(a1) : "rcx", "r11", "memory");
    return ret;
}

static void out(const char *f, ...)
{
    char buf[320];
    va_list ap;
    long n, ret;
    va_start(ap, f);
    n = fmt_v(buf, sizeof buf, f, ap);
    va_end(ap);
    if (n > (long)sizeof buf - 1)
        n = sizeof buf - 1;
    __asm__ volatile("syscall" : "=a"(ret) : "0"((long)SYS_WRITE), "D"(1L), "S"(buf), "d"(n)
                     : "rcx", "r11", "memory");
}

static int check(const char *name, int ok, const char *f, ...) __attribute__((format(printf, 3, 4)));
static int check(const char *name, int ok, const char *f, ...)
{
    char detail[256];
    va_list ap;
    va_start(ap, f);
    fmt_v(detail, sizeof detail, f, ap);
    va_end(ap);
    __atomic_add_fetch(ok ? &checks_passed : &checks_failed, 1, __ATOMIC_SEQ_CST);
    out("CHECK %s %s %s\n", name, ok ? "PASS" : "FAIL", detail);
    return ok;
}

static void spin(long n)
{
    for (volatile long i = 0; i < n; i++)
        __builtin_ia32_pause();
}

static uint64_t rdmsr_u(uint32_t msr)
{
    return (uint64_t)sys(SYS_DBG_RDMSR, msr, 0);
}

/* Spin until *p has all of `bits` (or give up): 1 if it has. */
static int wait_bits(_Atomic uint64_t *p, uint64_t bits, long bound)
{
    for (long i = 0; i < bound; i++) {
        if ((atomic_load(p) & bits) == bits)
            return 1;
        __builtin_ia32_pause();
    }
    return (atomic_load(p) & bits) == bits;
}

static int wait_int(volatile int *p, int value, long bound)
{
    for (long i = 0; i < bound && __atomic_load_n(p, __ATOMIC_SEQ_CST) != value; i++)
        __builtin_ia32_pause();
    return __atomic_load_n(p, __ATOMIC_SEQ_CST) == value;
}

static int wait_u64(_Atomic uint64_t *p, uint64_t value, long bound)
{
    for (long i = 0; i < bound && atomic_load(p) != value; i++)
        __builtin_ia32_pause();
    return atomic_load(p) == value;
}

static void upid_set_sn(volatile struct upid *u)
{
    __asm__ volatile("lock btsl $1, %0" : "+m"(u->status)::"memory");
}

static void senduipi_raw(uint64_t index)
{
    __asm__ volatile("senduipi %0" ::"r"(index) : "memory");
}

#define BIT(v) ((uint64_t)1 << (v))
#define ON(u) ((u)->status & 1)
#define SN(u) (((u)->status >> 1) & 1)

/* The backend's handler: not in uintr_hw.h (only the kernel is told its
 * address), declared here with the type it has in uintr_hw.c. */
void uintr_hw_handler(struct __uintr_frame *frame, unsigned long long vector);

static const uintr_abi_t *abi;
static int rfc;                                 /* the RFC's ABI: per-thread UITT, sender pays */
static uintr_hw_receiver_t rxA, rxB;            /* receivers of CPU 0 and CPU 1 */
static uintr_hw_sender_t sA[64];                /* CPU 0 -> rxA, by vector */
static uintr_hw_sender_t sX[64];                /* CPU 1 -> rxA */
static uintr_hw_sender_t sY;                    /* CPU 0 -> rxB */
static volatile struct upid *upA, *upB;
static volatile int phase, away_flag;
static volatile int cpu1_ready;
static int expected_faults[NCPUS];             /* SENDUIPIs meant to fault */

/* ---- UIRET resumes the interrupted instruction stream intact ---------- */

uint64_t regs_in[15] = {
    0x1111111111111111, 0x2222222222222222, 0x3333333333333333, 0x4444444444444444,
    0x5555555555555555, 0x6666666666666666, 0x7777777777777777, 0x8888888888888888,
    0x9999999999999999, 0xaaaaaaaaaaaaaaaa, 0xbbbbbbbbbbbbbbbb, 0xcccccccccccccccc,
    0xdddddddddddddddd, 0xeeeeeeeeeeeeeeee, 0x0123456789abcdef,
};
uint64_t regs_out[15];
uint8_t carry_out;
uint64_t redzone_out[16];

/* Loads 15 general registers and CF with known values, fills the 128-byte
 * red zone below RSP (which the interrupted code may use without moving
 * RSP), enables delivery with STUI (a user interrupt is pending in UIRR, so
 * it is delivered right after), and stores the registers, CF and the red
 * zone as they are when UIRET has returned. Every register the handler uses
 * it must give back, and the CPU must push its frame below the red zone
 * (UINTR_STACKADJUST = 128, what the kernel programs). */
__asm__(".text\n"
        ".globl uiret_probe\n"
        "uiret_probe:\n"
        "  pushq %rbx; pushq %rbp; pushq %r12; pushq %r13; pushq %r14; pushq %r15\n"
        "  movq regs_in+0(%rip), %rax\n  movq regs_in+8(%rip), %rbx\n"
        "  movq regs_in+16(%rip), %rcx\n  movq regs_in+24(%rip), %rdx\n"
        "  movq regs_in+32(%rip), %rsi\n  movq regs_in+40(%rip), %rdi\n"
        "  movq regs_in+48(%rip), %rbp\n  movq regs_in+56(%rip), %r8\n"
        "  movq regs_in+64(%rip), %r9\n  movq regs_in+72(%rip), %r10\n"
        "  movq regs_in+80(%rip), %r11\n  movq regs_in+88(%rip), %r12\n"
        "  movq regs_in+96(%rip), %r13\n  movq regs_in+104(%rip), %r14\n"
        "  movq regs_in+112(%rip), %r15\n"
        "  .set i, 8\n"
        "  .rept 16\n"
        "  movq %rax, -i(%rsp)\n"
        "  .set i, i + 8\n"
        "  .endr\n"
        "  stc\n"
        "  stui\n"
        ".globl uiret_probe_resume\n"
        "uiret_probe_resume:\n"
        "  nop; nop; nop; nop; nop; nop; nop; nop\n"
        "  setc carry_out(%rip)\n"
        "  movq %rax, regs_out+0(%rip)\n  movq %rbx, regs_out+8(%rip)\n"
        "  movq %rcx, regs_out+16(%rip)\n  movq %rdx, regs_out+24(%rip)\n"
        "  movq %rsi, regs_out+32(%rip)\n  movq %rdi, regs_out+40(%rip)\n"
        "  movq %rbp, regs_out+48(%rip)\n  movq %r8, regs_out+56(%rip)\n"
        "  movq %r9, regs_out+64(%rip)\n  movq %r10, regs_out+72(%rip)\n"
        "  movq %r11, regs_out+80(%rip)\n  movq %r12, regs_out+88(%rip)\n"
        "  movq %r13, regs_out+96(%rip)\n  movq %r14, regs_out+104(%rip)\n"
        "  movq %r15, regs_out+112(%rip)\n"
        "  leaq redzone_out(%rip), %rdi\n"
        "  .set i, 8\n"
        "  .rept 16\n"
        "  movq -i(%rsp), %rax\n"
        "  movq %rax, (%rdi)\n"
        "  addq $8, %rdi\n"
        "  .set i, i + 8\n"
        "  .endr\n"
        "  popq %r15; popq %r14; popq %r13; popq %r12; popq %rbp; popq %rbx\n"
        "  ret\n");
void uiret_probe(void);

/* Deliveries seen through the wake log: each entry's pending minus the
 * previous one is the vector that handler entry got. Fills `got` in order,
 * returns how many; -1 if an entry added other than exactly one new bit. */
static int logged_vectors(int first, int *got, int max)
{
    uint64_t prev = 0;
    int n = 0;
    for (int i = first; i < wake_log.n && n < max; i++) {
        uint64_t added;
        if (!wake_log.e[i].from_handler)
            continue;                    /* a sender's write (the RFC: the sender pays) */
        added = wake_log.e[i].pending & ~prev;
        if (added == 0 || (added & (added - 1)) != 0 || wake_log.e[i].value != 1)
            return -1;
        got[n++] = 63 - __builtin_clzll(added);
        prev = wake_log.e[i].pending;
    }
    return n;
}

/* This thread's UITT index that posts `vector` to `upid`, or -1. */
static long uitt_index_for(int vector, volatile struct upid *upid)
{
    struct uitt_entry *uitt = (struct uitt_entry *)sys(SYS_DBG_UITT, 0, 0);
    for (int i = 0; i < UITT_ENTRIES; i++)
        if (uitt[i].valid && uitt[i].vector == vector && uitt[i].upid == (uint64_t)upid)
            return i;
    return -1;
}

static int handler_writes(void)
{
    int n = 0;
    for (int i = 0; i < wake_log.n; i++)
        n += wake_log.e[i].from_handler;
    return n;
}

static void arm_wake_log(uintr_hw_receiver_t *rx)
{
    wake_log.n = 0;
    sys(SYS_DBG_ARM_WAKE, (long)&rx->blocked, (long)&rx->pending);
    uintr_hw_before_block(rx);   /* blocked = 1: the handler writes the wake fd */
}

static void disarm_wake_log(uintr_hw_receiver_t *rx)
{
    sys(SYS_DBG_ARM_WAKE, 0, 0);
    uintr_hw_after_block(rx);    /* blocked = 0, pending taken */
}

static char *vector_list(char *buf, int size, const int *v, int n)
{
    int len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && len < size - 4; i++)
        len += fmt(buf + len, (size_t)(size - len), i ? ",%d" : "%d", v[i]);
    return buf;
}

/* ---- CPU 0: one receiver, on itself ----------------------------------- */

static void cpu0_self_tests(void)
{
    static const int vectors[] = {3, 5, 7, 10, 21, 22, 33, 40, 50, 63};
    uint32_t a, b, c, d;
    uint64_t before, pending;
    int got[64], n, ok;
    char buf[256];
    long r;

    __cpuid_count(7, 0, a, b, c, d);
    check("cpuid_uintr", (d >> 5) & 1, "CPUID.(7,0):EDX=%x, bit 5 (UINTR) read in ring 3", d);

    abi = uintr_abi_find(HWEMU_ABI);
    rfc = abi != NULL && abi->uitt_per_thread;
    uintr_hw_receiver_init(&rxA, abi, WAKE_FD);
    r = uintr_hw_bind(&rxA);
    check("register_handler", r == 0 && _testui() == 1,
          "ABI %s: uintr_hw_bind() = %ld (syscall %ld, flags %x), then UIF = %d (TESTUI)", abi->name, r,
          abi->nr[UINTR_OP_REGISTER_HANDLER], abi->handler_flags, _testui());

    upA = (volatile struct upid *)sys(SYS_DBG_UPID, 0, 0);
    {
        uint64_t h = rdmsr_u(MSR_IA32_UINTR_HANDLER), sa = rdmsr_u(MSR_IA32_UINTR_STACKADJUST);
        uint64_t misc = rdmsr_u(MSR_IA32_UINTR_MISC), pd = rdmsr_u(MSR_IA32_UINTR_PD);
        check("receiver_msrs_and_upid",
              h == (uint64_t)&uintr_hw_handler && sa == 128 && ((misc >> 32) & 0xff) == UINTR_NOTIFICATION_VECTOR &&
                  pd == (uint64_t)upA && upid_nv((const struct upid *)upA) == UINTR_NOTIFICATION_VECTOR &&
                  upA->ndst == 0 && upA->status == (UINTR_NOTIFICATION_VECTOR << 16),
              "HANDLER=%lx (uintr_hw_handler %lx) STACKADJUST=%lu UINV=%lx PD=%lx UPID: status=%x NDST=%x",
              (unsigned long)h, (unsigned long)&uintr_hw_handler, (unsigned long)sa,
              (unsigned long)((misc >> 32) & 0xff), (unsigned long)pd, upA->status, upA->ndst);
    }

    /* The branch registers a sender once per process (uintr_hw_sender_init);
     * the RFC once per sending thread, at its first send. */
    ok = 1;
    for (unsigned i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        int v = vectors[i];
        int fd = uintr_hw_vector_fd(&rxA, (unsigned)v);
        int s = fd >= 0 ? uintr_hw_sender_init(&sA[v], &rxA, fd) : fd;
        if (fd < 0 || s != 0)
            ok = 0;
    }
    if (rfc) {
        /* the first sends register (and are delivered: ten handler entries) */
        for (unsigned i = 0; i < sizeof vectors / sizeof vectors[0]; i++)
            uintr_hw_send(&sA[vectors[i]]);
        if (!wait_u64(&rxA.interrupts, 10, 200000))
            ok = 0;
        uintr_hw_after_block(&rxA);
    }
    for (unsigned i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        int v = vectors[i];
        long idx = uitt_index_for(v, upA);
        if (idx < 0 || (!rfc && idx != sA[v].index)) {
            ok = 0;
            out("  vector %d: index %ld (sender's %d)\n", v, idx, sA[v].index);
        }
    }
    check("vector_fds_and_senders", ok && rdmsr_u(MSR_IA32_UINTR_TT) == (uint64_t)sys(SYS_DBG_UITT, 0, 0) + 1 &&
                                        (rdmsr_u(MSR_IA32_UINTR_MISC) & 0xffffffff) == UITT_ENTRIES - 1,
          "10 vector fds (syscall %ld), 10 senders (syscall %ld, %s): UITT entries {valid, vector, &UPID}; "
          "TT=%lx MISC=%lx", abi->nr[UINTR_OP_VECTOR_FD], abi->nr[UINTR_OP_REGISTER_SENDER],
          rfc ? "at each sender's first send, this thread's UITT" : "at init, the process's UITT",
          (unsigned long)rdmsr_u(MSR_IA32_UINTR_TT), (unsigned long)rdmsr_u(MSR_IA32_UINTR_MISC));

    /* SN set: the post only sets its PIR bit. */
    before = atomic_load(&rxA.interrupts);
    upid_set_sn(upA);
    r = uintr_hw_send(&sA[7]);
    spin(20000);
    check("sn_suppresses_notification",
          r == 0 && upA->pir == BIT(7) && !ON(upA) && SN(upA) && atomic_load(&rxA.interrupts) == before &&
              rdmsr_u(MSR_IA32_UINTR_RR) == 0,
          "SENDUIPI (uintr_hw_send) with SN=1: PIR=%lx ON=%d SN=%d UIRR=%lx, handler entries +%lu",
          (unsigned long)upA->pir, ON(upA), SN(upA), (unsigned long)rdmsr_u(MSR_IA32_UINTR_RR),
          (unsigned long)(atomic_load(&rxA.interrupts) - before));

    /* The kernel's return to user: clear SN, PIR non-zero -> self-IPI. */
    sys(SYS_DBG_RETURN, REPOST_SELF_IPI, 0);
    ok = wait_u64(&rxA.interrupts, before + 1, 100000);
    pending = uintr_hw_after_block(&rxA);
    check("repost_after_clearing_sn_delivers", ok && pending == BIT(7) && !SN(upA) && !ON(upA) && upA->pir == 0,
          "switch_uintr_return (clear SN, self-IPI UINV): handler entries +%lu, vector bits %lx; UPID ON=%d SN=%d PIR=%lx",
          (unsigned long)(atomic_load(&rxA.interrupts) - before), (unsigned long)pending, ON(upA), SN(upA),
          (unsigned long)upA->pir);

    before = atomic_load(&rxA.interrupts);
    upid_set_sn(upA);
    uintr_hw_send(&sA[7]);
    spin(5000);
    ok = atomic_load(&rxA.interrupts) == before && upA->pir == BIT(7);
    sys(SYS_DBG_RETURN, REPOST_IN_MEMORY, 0);
    ok = ok && wait_u64(&rxA.interrupts, before + 1, 100000);
    pending = uintr_hw_after_block(&rxA);
    check("repost_in_memory_delivers", ok && pending == BIT(7) && upA->pir == 0,
          "clear SN, PIR -> UIRR by WRMSR (no IPI): handler entries +%lu, vector bits %lx",
          (unsigned long)(atomic_load(&rxA.interrupts) - before), (unsigned long)pending);

    /* IF = 0 holds the notification IPI in the local APIC: ON stays set and
     * further posts only add PIR bits. */
    before = atomic_load(&rxA.interrupts);
    __asm__ volatile("cli" ::: "memory");
    uintr_hw_send(&sA[3]);
    ok = ON(upA) && upA->pir == BIT(3);
    uintr_hw_send(&sA[40]);
    uintr_hw_send(&sA[63]);
    uintr_hw_send(&sA[10]);
    check("post_sets_pir_and_on",
          ok && ON(upA) && !SN(upA) && upA->pir == (BIT(3) | BIT(40) | BIT(63) | BIT(10)) &&
              atomic_load(&rxA.interrupts) == before && rdmsr_u(MSR_IA32_UINTR_RR) == 0,
          "with IF=0: first post ON=1 PIR={3}; after posts 40,63,10: ON=%d SN=%d PIR=%lx UIRR=%lx",
          ON(upA), SN(upA), (unsigned long)upA->pir, (unsigned long)rdmsr_u(MSR_IA32_UINTR_RR));

    arm_wake_log(&rxA);
    __asm__ volatile("sti" ::: "memory");
    ok = wait_u64(&rxA.interrupts, before + 4, 200000);
    spin(5000);
    n = logged_vectors(0, got, 64);
    check("notification_processing", ok && !ON(upA) && upA->pir == 0 && rdmsr_u(MSR_IA32_UINTR_RR) == 0,
          "after STI: ON=%d PIR=%lx UIRR=%lx (PIR moved to UIRR and delivered)", ON(upA),
          (unsigned long)upA->pir, (unsigned long)rdmsr_u(MSR_IA32_UINTR_RR));
    check("delivery_highest_first_vector_argument",
          n == 4 && got[0] == 63 && got[1] == 40 && got[2] == 10 && got[3] == 3,
          "handler entries in order, vector as argument: %s (want 63,40,10,3)", vector_list(buf, sizeof buf, got, n));
    check("handler_counters_and_wake_writes",
          atomic_load(&rxA.interrupts) - before == 4 && wake_log.n == 4,
          "interrupts +%lu, raw write(wake fd) from the handler: %d",
          (unsigned long)(atomic_load(&rxA.interrupts) - before), wake_log.n);
    pending = atomic_load(&rxA.pending);
    disarm_wake_log(&rxA);
    check("pending_word", pending == (BIT(3) | BIT(40) | BIT(63) | BIT(10)),
          "receiver's pending word (what the loop takes) = %lx", (unsigned long)pending);

    /* UIRET gives back the interrupted instruction stream intact. */
    before = atomic_load(&rxA.interrupts);
    uintr_hw_mask();
    uintr_hw_send(&sA[21]);
    spin(2000);
    ok = rdmsr_u(MSR_IA32_UINTR_RR) == BIT(21) && atomic_load(&rxA.interrupts) == before;
    uiret_probe();
    {
        int same = 1, redzone = 1;
        for (int i = 0; i < 15; i++)
            same &= regs_out[i] == regs_in[i];
        for (int i = 0; i < 16; i++)
            redzone &= redzone_out[i] == regs_in[0];
        pending = uintr_hw_after_block(&rxA);
        check("frame_below_red_zone", redzone && atomic_load(&rxA.interrupts) == before + 1,
              "the 128 bytes below the interrupted RSP are intact after the delivery: %s",
              redzone ? "yes" : "NO (the frame overwrote the red zone)");
        check("uiret_resumes_with_registers",
              ok && same && carry_out == 1 && atomic_load(&rxA.interrupts) == before + 1 && pending == BIT(21) &&
                  _testui() == 1,
              "interrupt pending in UIRR, STUI -> handler -> UIRET: 15 GPRs %s, CF=%d, entries +%lu, UIF=%d",
              same ? "intact" : "CHANGED", carry_out, (unsigned long)(atomic_load(&rxA.interrupts) - before),
              _testui());
    }

    /* CLUI masks delivery (the notification is still processed into UIRR);
     * STUI unmasks it. */
    before = atomic_load(&rxA.interrupts);
    uintr_hw_mask();
    ok = _testui() == 0;
    uintr_hw_send(&sA[5]);
    spin(20000);
    {
        uint64_t uirr = rdmsr_u(MSR_IA32_UINTR_RR);
        int held = atomic_load(&rxA.interrupts) == before;
        uintr_hw_unmask();
        ok = ok && wait_u64(&rxA.interrupts, before + 1, 100000);
        pending = uintr_hw_after_block(&rxA);
        check("clui_masks_stui_unmasks",
              ok && held && uirr == BIT(5) && pending == BIT(5) && _testui() == 1 &&
                  rdmsr_u(MSR_IA32_UINTR_RR) == 0,
              "CLUI (uintr_hw_mask): UIF=0, post held in UIRR=%lx, no entry; STUI (uintr_hw_unmask): "
              "delivered vector bits %lx, UIF=%d",
              (unsigned long)uirr, (unsigned long)pending, _testui());
    }

    /* Repeated posts of one vector before delivery: one delivery. */
    before = atomic_load(&rxA.interrupts);
    __asm__ volatile("cli" ::: "memory");
    uintr_hw_send(&sA[50]);
    uintr_hw_send(&sA[50]);
    uintr_hw_send(&sA[50]);
    ok = upA->pir == BIT(50) && ON(upA);
    __asm__ volatile("sti" ::: "memory");
    wait_u64(&rxA.interrupts, before + 1, 100000);
    spin(20000);
    pending = uintr_hw_after_block(&rxA);
    check("repeated_posts_coalesce", ok && atomic_load(&rxA.interrupts) == before + 1 && pending == BIT(50),
          "3 posts of vector 50 before delivery: PIR had one bit, handler entries +%lu",
          (unsigned long)(atomic_load(&rxA.interrupts) - before));

    /* All 64 vectors, posted in a scrambled order while masked. */
    ok = 1;
    for (int v = 0; v < 64; v++) {
        int fd = uintr_hw_vector_fd(&rxA, (unsigned)v);
        if (fd < 0 || uintr_hw_sender_init(&sA[v], &rxA, fd) != 0)
            ok = 0;
    }
    before = atomic_load(&rxA.interrupts);
    uintr_hw_mask();
    for (int i = 0; i < 64; i++)
        uintr_hw_send(&sA[(i * 37 + 11) % 64]);
    spin(5000);
    ok = ok && rdmsr_u(MSR_IA32_UINTR_RR) == ~(uint64_t)0;
    arm_wake_log(&rxA);
    uintr_hw_unmask();
    ok = ok && wait_u64(&rxA.interrupts, before + 64, 2000000);
    n = logged_vectors(0, got, 64);
    {
        int descending = n == 64;
        for (int i = 0; i < n; i++)
            descending &= got[i] == 63 - i;
        disarm_wake_log(&rxA);
        check("sixty_four_vectors_highest_first", ok && descending,
              "64 vectors posted masked in scrambled order (UIRR all ones), %d entries, strictly 63..0: %s", n,
              descending ? "yes" : vector_list(buf, sizeof buf, got, n));
    }

    /* SENDUIPI faults (never a silent drop): index past the UITT size, and
     * an entry that is not valid. */
    {
        uint64_t pir_before = upA->pir;
        int faults = senduipi_faults[0];
        expected_faults[0] += 2;
        senduipi_raw(UITT_ENTRIES);           /* > MISC's UITT size */
        senduipi_raw(UITT_ENTRIES - 1);       /* not a valid entry */
        check("senduipi_bad_index_faults",
              senduipi_faults[0] - faults == 2 && senduipi_fault_vector[0] == FAULTS_GP && upA->pir == pir_before,
              "index %d (> UITT size) and %d (invalid entry): %d faults, vector %d (#GP), PIR unchanged",
              UITT_ENTRIES, UITT_ENTRIES - 1, senduipi_faults[0] - faults, senduipi_fault_vector[0]);
    }
}

/* ---- both CPUs --------------------------------------------------------- */

static void cpu0(void)
{
    uint64_t before, pending;
    int got[8], n, ok;
    long r;

    cpu0_self_tests();

    /* A sender on the other CPU, the receiver running in ring 3. */
    before = atomic_load(&rxA.interrupts);
    __atomic_store_n(&phase, 1, __ATOMIC_SEQ_CST);
    ok = wait_bits(&rxA.pending, BIT(21), 5000000);
    pending = uintr_hw_after_block(&rxA);
    check("cross_cpu_running_receiver", ok && pending == BIT(21) && atomic_load(&rxA.interrupts) == before + 1,
          "CPU 1 SENDUIPI -> IPI -> CPU 0 in ring 3: handler entries +%lu, vector bits %lx",
          (unsigned long)(atomic_load(&rxA.interrupts) - before), (unsigned long)pending);

    /* The same post seen in the UPID: CPU 0 holds the IPI (IF = 0). */
    before = atomic_load(&rxA.interrupts);
    __asm__ volatile("cli" ::: "memory");
    __atomic_store_n(&phase, 11, __ATOMIC_SEQ_CST);
    {
        uint64_t pir_seen;
        int on_seen = 0;
        for (long i = 0; i < 5000000 && !(on_seen = ON(upA)); i++)
            __builtin_ia32_pause();
        spin(2000);
        pir_seen = upA->pir;
        ok = atomic_load(&rxA.interrupts) == before;
        __asm__ volatile("sti" ::: "memory");
        ok = ok && wait_bits(&rxA.pending, BIT(21), 200000);
        pending = uintr_hw_after_block(&rxA);
        check("cross_cpu_post_sets_pir_and_on",
              on_seen && pir_seen == BIT(21) && ok && pending == BIT(21) && !ON(upA) && upA->pir == 0,
              "CPU 1's post with CPU 0's IPI held: ON=%d PIR=%lx, no entry; after STI delivered (bits %lx), "
              "ON=%d PIR=%lx", on_seen, (unsigned long)pir_seen, (unsigned long)pending, ON(upA),
              (unsigned long)upA->pir);
    }

    /* The receiver switched out: SN set; posts only fill PIR; back in ring 3
     * the kernel's return path re-posts them. */
    before = atomic_load(&rxA.interrupts);
    arm_wake_log(&rxA);
    away_flag = 0;
    __atomic_store_n(&phase, 2, __ATOMIC_SEQ_CST);
    r = sys(SYS_DBG_SWITCH_AWAY, (long)&away_flag, REPOST_SELF_IPI);
    ok = wait_u64(&rxA.interrupts, before + 2, 200000);
    n = logged_vectors(0, got, 8);
    {
        int sender_writes = 0;
        for (int i = 0; i < wake_log.n; i++)
            sender_writes += !wake_log.e[i].from_handler && wake_log.e[i].cpu == 1;
        if (rfc)
            check("sender_pays_wake_write",
                  sender_writes == 2 && atomic_load(&rxA.sender_wakes) == 2 && handler_writes() == 2,
                  "RFC: the kernel wakes no epoll_wait, so uintr_hw_send writes the wake fd when the loop is "
                  "blocked: %d writes from CPU 1's sends (counter %lu), %d from the handler", sender_writes,
                  (unsigned long)atomic_load(&rxA.sender_wakes), handler_writes());
        else
            check("kernel_wakes_no_sender_write",
                  sender_writes == 0 && atomic_load(&rxA.sender_wakes) == 0 && handler_writes() == 2,
                  "branch (WAITING_RECEIVER): senders never write the wake fd (%d writes, counter %lu); "
                  "the handler did %d", sender_writes, (unsigned long)atomic_load(&rxA.sender_wakes),
                  handler_writes());
    }
    disarm_wake_log(&rxA);
    check("cross_cpu_switched_out_receiver",
          r == 0 && ok && n == 2 && got[0] == 50 && got[1] == 22 && !SN(upA) && upA->pir == 0,
          "posts 22,50 while switched out; after switch_uintr_return: entries +%lu in order %d,%d; SN=%d PIR=%lx",
          (unsigned long)(atomic_load(&rxA.interrupts) - before), n > 0 ? got[0] : -1, n > 1 ? got[1] : -1,
          SN(upA), (unsigned long)upA->pir);

    /* The receiver asleep in uintr_wait: NV = kernel vector, the post wakes
     * it, the syscall returns -EINTR and the interrupt is delivered. */
    before = atomic_load(&rxA.interrupts);
    __atomic_store_n(&phase, 3, __ATOMIC_SEQ_CST);
    r = uintr_hw_wait(abi, 3000000);
    ok = wait_u64(&rxA.interrupts, before + 1, 200000);
    pending = uintr_hw_after_block(&rxA);
    check("cross_cpu_blocked_in_uintr_wait",
          r == -4 && ok && pending == BIT(33) && upid_nv((const struct upid *)upA) == UINTR_NOTIFICATION_VECTOR &&
              !SN(upA),
          "uintr_hw_wait() (syscall %ld) = %ld (-EINTR), then vector bits %lx delivered; NV back to %x, SN=%d",
          abi->nr[UINTR_OP_WAIT], r, (unsigned long)pending, upid_nv((const struct upid *)upA), SN(upA));

    if (!rfc) {                          /* the RFC's uintr_wait(flags) has no timeout */
        r = uintr_hw_wait(abi, 200);
        check("uintr_wait_times_out", r == 0, "uintr_hw_wait(200 us) with no sender = %ld", r);
    }

    /* The other way round: CPU 1 receives, CPU 0 sends. */
    __atomic_store_n(&phase, 4, __ATOMIC_SEQ_CST);
    wait_int(&cpu1_ready, 1, 5000000);
    before = atomic_load(&rxA.interrupts);
    r = uintr_hw_sender_init(&sY, &rxB, rxB.vector_fd[12]);
    ok = r == 0 && uintr_hw_send(&sY) == 0;
    __atomic_store_n(&phase, 5, __ATOMIC_SEQ_CST);
    wait_int(&phase, 6, 5000000);
    check("cross_cpu_other_direction", ok && atomic_load(&rxA.interrupts) == before && upB->ndst == (1u << 8),
          "CPU 0 -> CPU 1's receiver (UPID NDST=%x): CPU 0's receiver untouched", upB->ndst);

    /* Receiver exit: CLUI, fds closed, handler unregistered (SN set). */
    before = atomic_load(&rxA.interrupts);
    r = uintr_hw_close(&rxA);
    check("receiver_close",
          r == 0 && SN(upA) && rdmsr_u(MSR_IA32_UINTR_PD) == 0 && rdmsr_u(MSR_IA32_UINTR_HANDLER) == 0 &&
              _testui() == 0,
          "uintr_hw_close() = %ld (syscall %ld): SN=%d PD=%lx HANDLER=%lx UIF=%d", r,
          abi->nr[UINTR_OP_UNREGISTER_HANDLER], SN(upA),
          (unsigned long)rdmsr_u(MSR_IA32_UINTR_PD), (unsigned long)rdmsr_u(MSR_IA32_UINTR_HANDLER), _testui());
    __atomic_store_n(&phase, 7, __ATOMIC_SEQ_CST);
    wait_int(&phase, 8, 5000000);
    spin(20000);
    check("closed_receiver_gets_nothing", atomic_load(&rxA.interrupts) == before,
          "handler entries after close: +%lu", (unsigned long)(atomic_load(&rxA.interrupts) - before));

    /* The monitor skips a faulting SENDUIPI (so the fault checks can count
     * them); any fault the test did not ask for means a send went wrong. */
    check("no_unexpected_faults",
          senduipi_faults[0] == expected_faults[0] && senduipi_faults[1] == expected_faults[1],
          "SENDUIPI faults: CPU 0 %d (expected %d), CPU 1 %d (expected %d)", senduipi_faults[0],
          expected_faults[0], senduipi_faults[1], expected_faults[1]);
}

static void cpu1(void)
{
    int ok;
    long r;

    wait_int(&phase, 1, 400000000);
    r = uintr_hw_sender_init(&sX[21], &rxA, rxA.vector_fd[21]);
    r = r == 0 ? uintr_hw_sender_init(&sX[22], &rxA, rxA.vector_fd[22]) : r;
    r = r == 0 ? uintr_hw_sender_init(&sX[50], &rxA, rxA.vector_fd[50]) : r;
    r = r == 0 ? uintr_hw_sender_init(&sX[33], &rxA, rxA.vector_fd[33]) : r;
    r = r == 0 ? uintr_hw_send(&sX[21]) : r;
    ok = r == 0 && rdmsr_u(MSR_IA32_UINTR_TT) == (uint64_t)sys(SYS_DBG_UITT, 0, 0) + 1 && uitt_index_for(21, upA) >= 0;
    check("cross_cpu_sender_registers", ok,
          "CPU 1 registers senders for CPU 0's vector fds (syscall %ld on CPU 1, %s) and sends: its TT=%lx",
          abi->nr[UINTR_OP_REGISTER_SENDER], rfc ? "at the first send, its own UITT" : "at init",
          (unsigned long)rdmsr_u(MSR_IA32_UINTR_TT));

    wait_int(&phase, 11, 50000000);
    uintr_hw_send(&sX[21]);

    wait_int(&phase, 2, 50000000);
    ok = 0;
    for (long i = 0; i < 5000000 && !(ok = SN(upA)); i++)
        __builtin_ia32_pause();
    {
        uint64_t before = atomic_load(&rxA.interrupts);
        uintr_hw_send(&sX[22]);
        uintr_hw_send(&sX[50]);
        spin(20000);
        check("post_to_switched_out_receiver",
              ok && SN(upA) && !ON(upA) && upA->pir == (BIT(22) | BIT(50)) && atomic_load(&rxA.interrupts) == before,
              "CPU 1 posts 22,50 to CPU 0's receiver while SN=1: ON=%d PIR=%lx, no handler entry", ON(upA),
              (unsigned long)upA->pir);
        __atomic_store_n(&away_flag, 1, __ATOMIC_SEQ_CST);
    }

    wait_int(&phase, 3, 50000000);
    ok = 0;
    for (long i = 0; i < 5000000 && !(ok = upid_nv((const struct upid *)upA) == UINTR_KERNEL_VECTOR); i++)
        __builtin_ia32_pause();
    check("blocked_receiver_has_kernel_vector", ok && !SN(upA),
          "CPU 0 asleep in uintr_wait: its UPID NV=%x (kernel vector %x), SN=%d", upid_nv((const struct upid *)upA),
          UINTR_KERNEL_VECTOR, SN(upA));
    uintr_hw_send(&sX[33]);

    /* Receiver on this CPU. */
    wait_int(&phase, 4, 100000000);
    uintr_hw_receiver_init(&rxB, abi, WAKE_FD);
    r = uintr_hw_bind(&rxB);
    upB = (volatile struct upid *)sys(SYS_DBG_UPID, 0, 0);
    r = r == 0 ? uintr_hw_vector_fd(&rxB, 12) : r;
    __atomic_store_n(&cpu1_ready, 1, __ATOMIC_SEQ_CST);
    ok = wait_bits(&rxB.pending, BIT(12), 5000000);
    check("cpu1_receiver_gets_its_vector",
          r >= 0 && ok && atomic_load(&rxB.pending) == BIT(12) && atomic_load(&rxB.interrupts) == 1,
          "CPU 1's own receiver (its thread-local handler state): vector bits %lx, entries %lu",
          (unsigned long)atomic_load(&rxB.pending), (unsigned long)atomic_load(&rxB.interrupts));
    wait_int(&phase, 5, 5000000);
    __atomic_store_n(&phase, 6, __ATOMIC_SEQ_CST);

    wait_int(&phase, 7, 100000000);
    {
        uint64_t pir_before = upA->pir;
        int faults = senduipi_faults[1];
        long idx50 = uitt_index_for(50, upA), idx22 = rfc ? uitt_index_for(22, upA) : sX[22].index;
        r = uintr_hw_send(&sX[21]);
        senduipi_raw((uint64_t)idx50);            /* the UITT entry still exists */
        check("send_to_closed_receiver",
              r == -108 && (upA->pir & BIT(50)) && !ON(upA) && (pir_before & BIT(50)) == 0,
              "uintr_hw_send() = %ld (-ESHUTDOWN); a raw SENDUIPI only sets PIR (%lx), ON=%d: SN suppresses",
              r, (unsigned long)upA->pir, ON(upA));
        r = uintr_hw_sender_close(&sX[22]);
        expected_faults[1]++;
        senduipi_raw((uint64_t)idx22);
        check("unregistered_sender_faults", r == 0 && idx22 >= 0 && senduipi_faults[1] - faults == 1,
              "uintr_hw_sender_close() = %ld (syscall %ld, %s), SENDUIPI on its index %ld: %d fault (#GP)", r,
              abi->nr[UINTR_OP_UNREGISTER_SENDER], rfc ? "by fd" : "by index", idx22,
              senduipi_faults[1] - faults);
    }
    __atomic_store_n(&phase, 8, __ATOMIC_SEQ_CST);
}

void user_main(int cpu)
{
    if (cpu == 0)
        cpu0();
    else
        cpu1();
    sys(SYS_EXIT, 0, 0);
    for (;;)
        ;
}
