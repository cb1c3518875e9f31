/*
 * monitor.c - the ring-0 half of the freestanding UINTR test.
 *
 * What it does, in the order a kernel would: per CPU a GDT TSS, an IDT, the
 * `syscall` MSRs, CR4.UINTR, the local APIC; on CPU 0 it starts CPU 1 with
 * INIT-SIPI-SIPI. Then each CPU drops to ring 3 into user_main(cpu), with
 * IOPL 3 so the test program can CLI/STI (that holds a notification IPI in
 * the local APIC, which is how the test sees ON set in the UPID).
 *
 * The UINTR parts mirror Intel's uintr-linux-kernel branch (file
 * arch/x86/kernel/uintr.c there), step for step, so the instructions see the
 * state a Linux kernel with that branch would give them:
 *  - register_handler: UPID.NV = notification vector, UPID.NDST = this
 *    CPU's APIC ID (xAPIC: ID << 8); MSRs HANDLER, PD, STACKADJUST = 128
 *    (the ABI's red zone), MISC[39:32] = notification vector.
 *  - register_sender: a free UITT entry {valid, vector, &UPID}; MSRs TT =
 *    UITT | 1 (SENDUIPI enabled), MISC[31:0] = UITT size - 1.
 *  - switch_uintr_prepare (switched out): locked set of SN; a receiver that
 *    registered WAITING_RECEIVER and sleeps gets NV = the kernel vector
 *    instead, so a post wakes it.
 *  - switch_uintr_return (back to user): NDST = this CPU, locked clear of
 *    SN, and if PIR is non-zero a self-IPI with the notification vector
 *    (or, REPOST_IN_MEMORY, PIR moved into UIRR directly).
 *  - the kernel vector's handler (uintr_wake_up_process): ON set -> SN set,
 *    NV back to the notification vector, the sleeper woken (-EINTR).
 * The RFC's numbering (449..454) maps onto the same steps with the RFC's
 * differences (rfc_syscall()).
 * One process, one thread per CPU: thread n runs on CPU n and never moves,
 * so "switched out" is a CPU spinning in ring 0 with SN set.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "fmt.h"
#include "monitor.h"

#define EINTR 4
#define EBADF 9
#define ENOMEM 12
#define EFAULT 14
#define EBUSY 16
#define EINVAL 22
#define ENOSPC 28
#define ENOSYS 38
#define ETIMEDOUT 110
#define EOPNOTSUPP 95
#define ESHUTDOWN 108
#define F_DUPFD_CLOEXEC 1030

#define APIC_BASE 0xfee00000UL
#define APIC_ID 0x20
#define APIC_EOI 0xb0
#define APIC_SVR 0xf0
#define APIC_ICR_LO 0x300
#define APIC_ICR_HI 0x310
#define APIC_LVT_TIMER 0x320
#define APIC_TIMER_INIT 0x380
#define APIC_TIMER_DIV 0x3e0

#define CR4_UINTR (1UL << 25)
#define UINTR_HANDLER_FLAG_WAITING_RECEIVER 0x1000u
#define UINTR_HANDLER_FLAG_WAITING_SENDER 0x2000u
#define OS_ABI_REDZONE 128

/* ---- low-level ------------------------------------------------------- */

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}
static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
static inline uint32_t apic_read(uint32_t reg) { return *(volatile uint32_t *)(APIC_BASE + reg); }
static inline void apic_write(uint32_t reg, uint32_t v) { *(volatile uint32_t *)(APIC_BASE + reg) = v; }
static inline void pause(void) { __asm__ volatile("pause"); }

/* ---- output: COM1 and the Bochs port 0xe9 console, one line at a time -- */

static volatile int print_lock;

static void lock(volatile int *l)
{
    while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
        pause();
}
static void unlock(volatile int *l) { __atomic_store_n(l, 0, __ATOMIC_RELEASE); }

static void serial_putc(char c)
{
    for (int i = 0; i < 100000 && !(inb(0x3f8 + 5) & 0x20); i++)
        pause();
    outb(0x3f8, (uint8_t)c);
    outb(0xe9, (uint8_t)c);
}

static void kwrite(const char *s, long n)
{
    uint64_t flags;
    __asm__ volatile("pushfq; popq %0; cli" : "=r"(flags));
    lock(&print_lock);
    for (long i = 0; i < n; i++)
        serial_putc(s[i]);
    unlock(&print_lock);
    if (flags & 0x200)
        __asm__ volatile("sti");
}

static void kprintf(const char *f, ...) __attribute__((format(printf, 1, 2)));
static void kprintf(const char *f, ...)
{
    char buf[256];
    va_list ap;
    int n;
    va_start(ap, f);
    n = fmt_v(buf, sizeof buf, f, ap);
    va_end(ap);
    kwrite(buf, n < (int)sizeof buf ? n : (int)sizeof buf - 1);
}

/* COM1: 115200 baud, 8 data bits, no parity, one stop bit. */
static void serial_init(void)
{
    outb(0x3f8 + 1, 0x00);
    outb(0x3f8 + 3, 0x80);
    outb(0x3f8 + 0, 0x01);
    outb(0x3f8 + 1, 0x00);
    outb(0x3f8 + 3, 0x03);
}

static void shutdown(void)
{
    /* Bochs: "Shutdown" written to port 0x8900 ends the simulation. */
    for (const char *p = "Shutdown"; *p; p++)
        outb(0x8900, (uint8_t)*p);
    for (;;)
        __asm__ volatile("cli; hlt");
}

static void fatal(const char *what, uint64_t a, uint64_t b) __attribute__((noreturn));
static void fatal(const char *what, uint64_t a, uint64_t b)
{
    kprintf("FATAL %s %lx %lx\n", what, (unsigned long)a, (unsigned long)b);
    shutdown();
    for (;;)
        ;
}

/* ---- per-CPU state ---------------------------------------------------- */

struct percpu {
    uint64_t kstack_top;          /* offset 0: syscall_entry's stack */
    uint64_t scratch;             /* offset 8: the user RSP on syscall entry */
    int cpu;                      /* offset 16 */
    int pad;
    uint64_t user_rip;            /* offset 24: where the syscall came from */
    uint32_t apic_id;
} __attribute__((aligned(64)));

struct tss {
    uint32_t reserved0;
    uint64_t rsp0, rsp1, rsp2;
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3, iomap_base;
} __attribute__((packed));

/* One thread per CPU: its UINTR receiver and sender state (the branch keeps
 * these in task_struct.thread and the UPID context). */
struct uthread {
    int receiver;                 /* upid_activated */
    int sender;                   /* uitt_activated */
    int receiver_active;          /* cleared when the thread unregisters */
    unsigned waiting_cost;        /* handler flags: WAITING_RECEIVER */
    volatile int waiting;         /* asleep with NV = kernel vector */
    volatile int woken;
};

static struct percpu percpu[NCPUS];
static struct tss tss[NCPUS] __attribute__((aligned(16)));
static uint8_t kstack[NCPUS][16384] __attribute__((aligned(16)));
static uint8_t ustack[NCPUS][65536] __attribute__((aligned(16)));
static uint8_t tls_area[NCPUS][8192] __attribute__((aligned(4096)));
static struct upid upids[NCPUS];
/* The branch keeps one UITT per process; the RFC one per thread. The test
 * process uses one ABI throughout (the first UINTR syscall decides). */
static struct uitt_entry uitt[UITT_ENTRIES];
static struct uitt_entry uitt_thread[NCPUS][UITT_ENTRIES];
static long uitt_thread_fd[NCPUS][UITT_ENTRIES];   /* RFC: the fd each entry came from */
static int abi_rfc = -1;

static struct uitt_entry *uitt_of(int cpu)
{
    return abi_rfc == 1 ? uitt_thread[cpu] : uitt;
}
static struct uthread threads[NCPUS];
static volatile int cpu_up[NCPUS], cpu_done[NCPUS];
static volatile int timer_fired[NCPUS];
uint64_t ap_stack_top;            /* read by boot.S for the second CPU */

struct wake_log wake_log;
volatile int senduipi_faults[NCPUS];
volatile int senduipi_fault_vector[NCPUS];
volatile int checks_passed, checks_failed;
static volatile uint64_t *wake_blocked, *wake_pending;   /* the armed receiver */
extern char uintr_hw_handler[];

/* The vector fds: one process-wide table, fds from 10. */
#define NFDS 200
#define FD_BASE 10
static struct {
    int used;
    int vector;
    int owner;                    /* the receiving thread (= CPU) */
} fds[NFDS];
static volatile int fd_lock, uitt_lock;

extern char isr_stubs[];
extern void syscall_entry(void);
extern void enter_user(uint64_t rip, uint64_t rsp, uint64_t rflags, uint64_t arg) __attribute__((noreturn));
extern uint64_t boot_gdt[];
extern char __tls_size[];

static int this_cpu(void)
{
    int cpu;
    __asm__ volatile("movl %%gs:16, %0" : "=r"(cpu));
    return cpu;
}

/* ---- descriptor tables ------------------------------------------------- */

struct idt_gate {
    uint16_t off0, sel;
    uint8_t ist, type;
    uint16_t off1;
    uint32_t off2, zero;
} __attribute__((packed));
static struct idt_gate idt[256] __attribute__((aligned(16)));

static void idt_init(void)
{
    for (int i = 0; i < 256; i++) {
        uint64_t a = (uint64_t)(isr_stubs + 16 * i);
        idt[i] = (struct idt_gate){(uint16_t)a, 0x08, 0, 0x8e, (uint16_t)(a >> 16), (uint32_t)(a >> 32), 0};
    }
}

static void cpu_tables(int cpu)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) d;
    uint64_t base = (uint64_t)&tss[cpu], limit = sizeof(struct tss) - 1;
    int slot = 6 + 2 * cpu;       /* 0x30, 0x40 */
    tss[cpu].rsp0 = percpu[cpu].kstack_top;
    tss[cpu].iomap_base = sizeof(struct tss);
    boot_gdt[slot] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89UL << 40) |
                     ((limit >> 16) << 48) | (((base >> 24) & 0xff) << 56);
    boot_gdt[slot + 1] = base >> 32;
    __asm__ volatile("ltr %w0" ::"r"((uint16_t)(slot * 8)));
    d.limit = sizeof idt - 1;
    d.base = (uint64_t)idt;
    __asm__ volatile("lidt %0" ::"m"(d));
    wrmsr(0xc0000101, (uint64_t)&percpu[cpu]);      /* GS base: struct percpu */
    wrmsr(0xc0000081, (0x10UL << 48) | (0x08UL << 32));  /* STAR */
    wrmsr(0xc0000082, (uint64_t)syscall_entry);     /* LSTAR */
    wrmsr(0xc0000084, 0x47700);                     /* SFMASK: TF DF IF AC NT */
}

/* ---- the local APIC ---------------------------------------------------- */

static void apic_init(int cpu)
{
    apic_write(APIC_SVR, 0x100 | SPURIOUS_VECTOR);
    apic_write(APIC_LVT_TIMER, 0x10000 | TIMER_VECTOR);   /* masked until used */
    percpu[cpu].apic_id = apic_read(APIC_ID) >> 24;
}

static void apic_icr(uint32_t dest, uint32_t lo)
{
    apic_write(APIC_ICR_HI, dest << 24);
    apic_write(APIC_ICR_LO, lo);
    while (apic_read(APIC_ICR_LO) & 0x1000)       /* delivery status */
        pause();
}

static void delay(long n)
{
    for (volatile long i = 0; i < n; i++)
        pause();
}

/* xAPIC mode: NDST carries the APIC ID in bits 15:8 (cpu_to_ndst()). */
static uint32_t cpu_to_ndst(int cpu)
{
    return (percpu[cpu].apic_id << 8) & 0xff00;
}

/* ---- the branch's UINTR kernel steps ----------------------------------- */

static inline void upid_set_bit(struct upid *u, int bit)
{
    __asm__ volatile("lock btsl %1, %0" : "+m"(u->status) : "Ir"(bit) : "memory");
}
static inline void upid_clear_bit(struct upid *u, int bit)
{
    __asm__ volatile("lock btrl %1, %0" : "+m"(u->status) : "Ir"(bit) : "memory");
}
static inline void upid_set_nv(struct upid *u, unsigned nv)
{
    *((volatile uint8_t *)&u->status + 2) = (uint8_t)nv;
}

static long do_register_handler(int cpu, uint64_t handler, unsigned flags)
{
    struct uthread *t = &threads[cpu];
    struct upid *u = &upids[cpu];
    uint64_t misc;
    if (flags & ~(UINTR_HANDLER_FLAG_WAITING_RECEIVER | UINTR_HANDLER_FLAG_WAITING_SENDER))
        return -EINVAL;
    if (!handler)
        return -EFAULT;
    if (t->receiver)
        return -EBUSY;
    upid_set_nv(u, UINTR_NOTIFICATION_VECTOR);
    u->ndst = cpu_to_ndst(cpu);
    wrmsr(MSR_IA32_UINTR_HANDLER, handler);
    wrmsr(MSR_IA32_UINTR_PD, (uint64_t)u);
    wrmsr(MSR_IA32_UINTR_STACKADJUST, OS_ABI_REDZONE);
    misc = rdmsr(MSR_IA32_UINTR_MISC);
    misc |= (uint64_t)UINTR_NOTIFICATION_VECTOR << 32;
    wrmsr(MSR_IA32_UINTR_MISC, misc);
    t->receiver = 1;
    t->receiver_active = 1;
    t->waiting_cost = flags;
    return 0;
}

static long do_unregister_handler(int cpu)
{
    struct uthread *t = &threads[cpu];
    uint64_t misc;
    if (!t->receiver)
        return -EINVAL;
    misc = rdmsr(MSR_IA32_UINTR_MISC);
    misc &= ~(0xffUL << 32);
    wrmsr(MSR_IA32_UINTR_MISC, misc);
    wrmsr(MSR_IA32_UINTR_PD, 0);
    wrmsr(MSR_IA32_UINTR_RR, 0);
    wrmsr(MSR_IA32_UINTR_STACKADJUST, 0);
    wrmsr(MSR_IA32_UINTR_HANDLER, 0);
    t->receiver = 0;
    t->receiver_active = 0;
    upid_set_bit(&upids[cpu], UPID_SN);   /* no more notifications from this UPID */
    return 0;
}

static long do_vector_fd(int cpu, uint64_t vector, unsigned flags)
{
    long r = -ENOSPC;
    if (flags)
        return -EINVAL;
    if (!threads[cpu].receiver)
        return -EINVAL;
    if (vector >= 64)
        return -ENOSPC;
    lock(&fd_lock);
    for (int i = 0; i < NFDS; i++)
        if (!fds[i].used) {
            fds[i].used = 1;
            fds[i].vector = (int)vector;
            fds[i].owner = cpu;
            r = FD_BASE + i;
            break;
        }
    unlock(&fd_lock);
    return r;
}

static int fd_slot(long fd)
{
    long i = fd - FD_BASE;
    return (i >= 0 && i < NFDS && fds[i].used) ? (int)i : -1;
}

static void set_sender_msrs(int cpu)
{
    uint64_t misc;
    wrmsr(MSR_IA32_UINTR_TT, (uint64_t)uitt_of(cpu) | 1);
    misc = rdmsr(MSR_IA32_UINTR_MISC);
    misc &= 0xffffffff00000000UL;
    misc |= UITT_ENTRIES - 1;
    wrmsr(MSR_IA32_UINTR_MISC, misc);
    threads[cpu].sender = 1;
}

static long do_register_sender(int cpu, long fd, unsigned flags)
{
    struct uitt_entry *uitt = uitt_of(cpu);
    int slot, owner, entry = -1;
    if (flags)
        return -EINVAL;
    lock(&fd_lock);
    slot = fd_slot(fd);
    owner = slot >= 0 ? fds[slot].owner : -1;
    unlock(&fd_lock);
    if (slot < 0)
        return -EBADF;
    if (!threads[owner].receiver_active)
        return -ESHUTDOWN;
    lock(&uitt_lock);
    for (int i = 0; i < UITT_ENTRIES; i++)
        if (!uitt[i].valid) {
            uitt[i].vector = (uint8_t)fds[slot].vector;
            uitt[i].upid = (uint64_t)&upids[owner];
            uitt[i].valid = 1;
            uitt_thread_fd[cpu][i] = fd;
            entry = i;
            break;
        }
    unlock(&uitt_lock);
    if (entry < 0)
        return -ENOSPC;
    if (!threads[cpu].sender)
        set_sender_msrs(cpu);
    return entry;
}

static long do_unregister_sender(int cpu, long index, unsigned flags)
{
    struct uitt_entry *uitt = uitt_of(cpu);
    if (flags)
        return -EINVAL;
    if (abi_rfc == 1) {                 /* RFC: by fd, in this thread's UITT */
        long fd = index;
        index = -1;
        for (int i = 0; i < UITT_ENTRIES; i++)
            if (uitt[i].valid && uitt_thread_fd[cpu][i] == fd)
                index = i;
        if (index < 0)
            return -EINVAL;
    }
    if (index < 0 || index >= UITT_ENTRIES || !uitt[index].valid)
        return -EINVAL;
    uitt[index].valid = 0;
    return 0;
}

/* switch_uintr_prepare(): the thread leaves the CPU. */
static void switch_uintr_prepare(int cpu, int sleeping)
{
    struct uthread *t = &threads[cpu];
    if (!t->receiver)
        return;
    /* The RFC's uintr_wait() always sleeps on the kernel vector; the branch
     * does so for any interruptible sleep of a WAITING_RECEIVER receiver. */
    if (sleeping && (abi_rfc == 1 || (t->waiting_cost & UINTR_HANDLER_FLAG_WAITING_RECEIVER))) {
        upid_set_nv(&upids[cpu], UINTR_KERNEL_VECTOR);   /* uintr_switch_to_kernel_interrupt */
        t->woken = 0;
        t->waiting = 1;
        return;
    }
    upid_set_bit(&upids[cpu], UPID_SN);
}

/* switch_uintr_return(): on the way back to ring 3, interrupts disabled. */
static void switch_uintr_return(int cpu, int mode)
{
    struct upid *u = &upids[cpu];
    uint64_t misc;
    if (!threads[cpu].receiver)
        return;
    misc = rdmsr(MSR_IA32_UINTR_MISC);
    if (!(misc & (0xffUL << 32)))
        wrmsr(MSR_IA32_UINTR_MISC, misc | ((uint64_t)UINTR_NOTIFICATION_VECTOR << 32));
    u->ndst = cpu_to_ndst(cpu);
    upid_clear_bit(u, UPID_SN);
    if (mode == REPOST_IN_MEMORY) {
        uint64_t pir = __atomic_exchange_n(&u->pir, 0, __ATOMIC_SEQ_CST);
        if (pir)
            wrmsr(MSR_IA32_UINTR_RR, rdmsr(MSR_IA32_UINTR_RR) | pir);
    } else if (u->pir) {
        apic_icr(0, 0x40000 | UINTR_NOTIFICATION_VECTOR);   /* self, fixed */
    }
}

/* uintr_wake_up_process(), run by the kernel vector's handler. */
static void uintr_wake_up_process(void)
{
    for (int cpu = 0; cpu < NCPUS; cpu++) {
        struct uthread *t = &threads[cpu];
        if (t->waiting && (upids[cpu].status & (1u << UPID_ON))) {
            upid_set_bit(&upids[cpu], UPID_SN);
            upid_set_nv(&upids[cpu], UINTR_NOTIFICATION_VECTOR);
            t->waiting = 0;
            t->woken = 1;
        }
    }
}

/* uintr_wait(usec): sleep interruptibly until a post wakes us (-EINTR) or
 * the time is up (0). The local APIC timer bounds the sleep. */
static long do_uintr_wait(int cpu, uint64_t usec, unsigned flags)
{
    struct uthread *t = &threads[cpu];
    long r;
    if (flags)
        return -EINVAL;
    if (usec == 0)
        return 0;
    if (!t->receiver)
        return -EOPNOTSUPP;
    timer_fired[cpu] = 0;
    apic_write(APIC_TIMER_DIV, 0xb);              /* divide by 1 */
    apic_write(APIC_LVT_TIMER, TIMER_VECTOR);     /* one-shot */
    /* Bochs's APIC timer advances with emulated time: ips = 50 M (bochsrc)
     * makes 50 ticks a microsecond at divide-by-1. */
    apic_write(APIC_TIMER_INIT, (uint32_t)(usec > 80000000 / 50 ? 80000000 : usec * 50));
    switch_uintr_prepare(cpu, 1);
    /* Interrupts on, then sleep: the sti;hlt pair is atomic, so a wake-up
     * between the check and the hlt is not lost. */
    for (;;) {
        __asm__ volatile("cli");
        if (t->woken || timer_fired[cpu])
            break;
        __asm__ volatile("sti; hlt");
    }
    apic_write(APIC_LVT_TIMER, 0x10000 | TIMER_VECTOR);
    r = t->woken ? -EINTR : 0;
    /* switch_uintr_finish(): the sleep is over either way */
    if (t->waiting) {
        upid_set_nv(&upids[cpu], UINTR_NOTIFICATION_VECTOR);
        t->waiting = 0;
    }
    switch_uintr_return(cpu, REPOST_SELF_IPI);
    return r;
}

/* ---- traps ------------------------------------------------------------- */

struct frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error, rip, cs, rflags, rsp, ss;
};

/* Length of a `senduipi reg` at p: F3 [REX] 0F C7 /6 with a register operand. */
static int senduipi_length(const uint8_t *p)
{
    int n = 0;
    if (p[n++] != 0xf3)
        return 0;
    if ((p[n] & 0xf0) == 0x40)
        n++;
    if (p[n] != 0x0f || p[n + 1] != 0xc7 || (p[n + 2] & 0xf8) != 0xf0)
        return 0;
    return n + 3;
}

void trap(struct frame *f)
{
    int cpu = this_cpu();
    switch (f->vector) {
    case UINTR_KERNEL_VECTOR:
        uintr_wake_up_process();
        apic_write(APIC_EOI, 0);
        return;
    case TIMER_VECTOR:
        timer_fired[cpu] = 1;
        apic_write(APIC_EOI, 0);
        return;
    case UINTR_NOTIFICATION_VECTOR:
        /* Reaches the IDT only when MISC holds no notification vector
         * (handler unregistered): nothing to do but acknowledge. */
        apic_write(APIC_EOI, 0);
        return;
    case SPURIOUS_VECTOR:
        return;
    case 6:
    case 13:
        if ((f->cs & 3) == 3) {
            int n = senduipi_length((const uint8_t *)f->rip);
            if (n) {
                senduipi_faults[cpu]++;
                senduipi_fault_vector[cpu] = (int)f->vector;
                f->rip += n;
                return;
            }
        }
        break;
    }
    kprintf("FATAL cpu %d trap %lu error %lx rip %lx cs %lx rsp %lx cr2 %lx\n", cpu,
            (unsigned long)f->vector, (unsigned long)f->error, (unsigned long)f->rip,
            (unsigned long)f->cs, (unsigned long)f->rsp, ({
                uint64_t cr2;
                __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
                (unsigned long)cr2;
            }));
    shutdown();
}

/* ---- syscalls ---------------------------------------------------------- */

static long do_exit(int cpu, long code)
{
    __atomic_store_n(&cpu_done[cpu], 1, __ATOMIC_SEQ_CST);
    if (code)
        kprintf("cpu %d: test program exit code %ld\n", cpu, code);
    if (cpu != 0)
        for (;;)
            __asm__ volatile("cli; hlt");
    for (long i = 0; i < 200000000 && !cpu_done[1]; i++)
        pause();
    if (!cpu_done[1])
        kprintf("FATAL cpu 1 did not finish\n");
    kprintf("SUMMARY passed=%d failed=%d\n", checks_passed, checks_failed);
    shutdown();
    return 0;
}

/* The RFC's numbers (449..454) map onto the branch's operations, with the
 * RFC's differences: no handler flags, per-thread UITT, unregister_sender
 * by fd, uintr_wait(flags) without a timeout. */
static long rfc_syscall(int cpu, long nr, long a0, long a1)
{
    switch (nr) {
    case 449:
        return a1 ? -EINVAL : do_register_handler(cpu, (uint64_t)a0, 0);
    case 450:
        return a0 ? -EINVAL : do_unregister_handler(cpu);
    case 451:
        return do_vector_fd(cpu, (uint64_t)a0, (unsigned)a1);
    case 452:
        return do_register_sender(cpu, a0, (unsigned)a1);
    case 453:
        return do_unregister_sender(cpu, a0, (unsigned)a1);
    case 454:
        return do_uintr_wait(cpu, 3000000, (unsigned)a0);
    }
    return -ENOSYS;
}

long monitor_syscall(long a0, long a1, long a2, long a3, long a4, long nr)
{
    int cpu = this_cpu();
    (void)a2, (void)a3, (void)a4;
    if ((nr >= 449 && nr <= 454) || (nr >= 471 && nr <= 476)) {
        int rfc = nr <= 454;
        if (abi_rfc < 0)
            abi_rfc = rfc;
        if (abi_rfc != rfc)
            return -ENOSYS;              /* one numbering per boot */
        if (rfc)
            return rfc_syscall(cpu, nr, a0, a1);
    }
    switch (nr) {
    case SYS_WRITE:
        if (a0 == 1 || a0 == 2) {
            kwrite((const char *)a1, a2);
            return a2;
        }
        if (a0 == WAKE_FD && a2 == 8) {
            int i = wake_log.n;
            uint64_t rip = percpu[cpu].user_rip;
            if (i < WAKE_LOG_MAX) {
                wake_log.e[i].value = *(const uint64_t *)a1;
                wake_log.e[i].pending = wake_pending ? *wake_pending : 0;
                wake_log.e[i].cpu = cpu;
                /* the project's handler is a few dozen bytes long */
                wake_log.e[i].from_handler = rip >= (uint64_t)uintr_hw_handler &&
                                             rip < (uint64_t)uintr_hw_handler + 512;
                wake_log.n = i + 1;
            }
            if (wake_blocked)
                *(volatile int *)wake_blocked = 1;   /* re-arm: log the next one too */
            return 8;
        }
        return -EBADF;
    case SYS_CLOSE: {
        int slot;
        lock(&fd_lock);
        slot = fd_slot(a0);
        if (slot >= 0)
            fds[slot].used = 0;
        unlock(&fd_lock);
        return slot >= 0 ? 0 : -EBADF;
    }
    case SYS_FCNTL: {
        long r = -EBADF;
        if (a1 != F_DUPFD_CLOEXEC)
            return -EINVAL;
        lock(&fd_lock);
        int slot = fd_slot(a0);
        if (slot >= 0) {
            r = -ENOMEM;
            for (int i = 0; i < NFDS; i++)
                if (!fds[i].used && FD_BASE + i >= a2) {
                    fds[i] = fds[slot];
                    r = FD_BASE + i;
                    break;
                }
        }
        unlock(&fd_lock);
        return r;
    }
    case SYS_GETTID:
        return 1000 + cpu;
    case SYS_EXIT:
        return do_exit(cpu, a0);
    case SYS_UINTR_REGISTER_HANDLER:
        return do_register_handler(cpu, (uint64_t)a0, (unsigned)a1);
    case SYS_UINTR_UNREGISTER_HANDLER:
        return a0 ? -EINVAL : do_unregister_handler(cpu);
    case SYS_UINTR_VECTOR_FD:
        return do_vector_fd(cpu, (uint64_t)a0, (unsigned)a1);
    case SYS_UINTR_REGISTER_SENDER:
        return do_register_sender(cpu, a0, (unsigned)a1);
    case SYS_UINTR_UNREGISTER_SENDER:
        return do_unregister_sender(cpu, a0, (unsigned)a1);
    case SYS_UINTR_WAIT:
        return do_uintr_wait(cpu, (uint64_t)a0, (unsigned)a1);
    case SYS_DBG_RDMSR:
        if (a0 < MSR_IA32_UINTR_RR || a0 > MSR_IA32_UINTR_TT)
            return -EINVAL;
        return (long)rdmsr((uint32_t)a0);
    case SYS_DBG_SWITCH_AWAY: {
        volatile int *flag = (volatile int *)a0;
        long i;
        switch_uintr_prepare(cpu, 0);
        for (i = 0; i < 50000000 && !*flag; i++)
            pause();
        switch_uintr_return(cpu, (int)a1);
        return *flag ? 0 : -ETIMEDOUT;
    }
    case SYS_DBG_RETURN:
        switch_uintr_return(cpu, (int)a0);
        return 0;
    case SYS_DBG_ARM_WAKE:
        wake_blocked = (volatile uint64_t *)a0;
        wake_pending = (volatile uint64_t *)a1;
        return 0;
    case SYS_DBG_UPID:
        return (long)&upids[cpu];
    case SYS_DBG_UITT:
        return (long)uitt_of(cpu);
    }
    return -ENOSYS;
}

/* ---- start ------------------------------------------------------------- */

/* Each CPU's thread-local block: zeroed (.tdata is empty, link.ld checks),
 * the thread pointer at its end, pointing to itself (x86-64 TLS variant II:
 * variables at negative offsets from %fs). */
static uint64_t tls_setup(int cpu)
{
    uint64_t tp = (uint64_t)&tls_area[cpu][4096];
    if ((uint64_t)__tls_size > 4096 - 64)
        fatal("thread-local block too large", (uint64_t)__tls_size, 0);
    *(uint64_t *)tp = tp;
    return tp;
}

static void cpu_setup(int cpu)
{
    uint64_t cr4;
    percpu[cpu].cpu = cpu;
    percpu[cpu].kstack_top = (uint64_t)&kstack[cpu][sizeof kstack[cpu]];
    cpu_tables(cpu);
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    cr4 |= CR4_UINTR;
    __asm__ volatile("mov %0, %%cr4" ::"r"(cr4));
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    if (!(cr4 & CR4_UINTR))
        fatal("CR4.UINTR does not stick", cr4, 0);
    apic_init(cpu);
    __asm__ volatile("movw %w0, %%fs" ::"r"(0));
    wrmsr(0xc0000100, tls_setup(cpu));             /* FS base: the thread pointer */
}

void monitor_main(int cpu)
{
    uint32_t r[4];
    if (cpu == 0) {
        outb(0x21, 0xff);                          /* mask the legacy PICs */
        outb(0xa1, 0xff);
        serial_init();
        kprintf("\nMONITOR uintr freestanding test: no Linux; ring-0 monitor + ring-3 test program\n");
        cpuid(0, 0, r);
        if (r[0] < 7)
            fatal("CPUID leaf 7 missing", r[0], 0);
        cpuid(7, 0, r);
        if (!(r[3] & (1u << 5)))
            fatal("CPUID.(7,0):EDX[5] (UINTR) is 0: not a UINTR CPU model", r[3], 0);
        idt_init();
        cpu_setup(0);
        kprintf("MONITOR cpu 0: apic id %u, CR4.UINTR set\n", percpu[0].apic_id);
        ap_stack_top = (uint64_t)&kstack[1][sizeof kstack[1]];
        apic_icr(0, 0xc4500);                      /* INIT, all but self */
        delay(20000);
        apic_icr(0, 0xc4608);                      /* SIPI: start at 0x8000 */
        delay(2000);
        if (!cpu_up[1])
            apic_icr(0, 0xc4608);
        for (long i = 0; i < 20000000 && !cpu_up[1]; i++)
            pause();
        if (!cpu_up[1])
            fatal("the second CPU did not start", 0, 0);
    } else {
        if (cpu >= NCPUS)
            for (;;)
                __asm__ volatile("cli; hlt");
        cpu_setup(cpu);
        kprintf("MONITOR cpu %d: apic id %u, CR4.UINTR set\n", cpu, percpu[cpu].apic_id);
        __atomic_store_n(&cpu_up[cpu], 1, __ATOMIC_SEQ_CST);
    }
    /* Ring 3, IF = 1 and IOPL = 3. */
    enter_user((uint64_t)user_main, (uint64_t)&ustack[cpu][sizeof ustack[cpu]] - 8, 0x3202, (uint64_t)cpu);
}
