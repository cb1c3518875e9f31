/*
 * entry.S - the monitor's ways in and out of ring 0: the 256 interrupt and
 * exception stubs (all to trap() in monitor.c), the `syscall` entry (to
 * monitor_syscall()) and the first entry into ring 3.
 */
        .text
        .code64

/* Stubs 16 bytes apart: stub n is at isr_stubs + 16 * n. Exceptions that
 * push an error code do not get the dummy one. */
        .balign 16
        .globl isr_stubs
isr_stubs:
        .set    n, 0
        .rept   256
        .balign 16
        .if (n == 8) || ((n >= 10) && (n <= 14)) || (n == 17) || (n == 21) || (n == 29) || (n == 30)
        .else
        pushq   $0
        .endif
        pushq   $n
        jmp     isr_common
        .set    n, n + 1
        .endr

isr_common:
        pushq   %rax
        pushq   %rbx
        pushq   %rcx
        pushq   %rdx
        pushq   %rsi
        pushq   %rdi
        pushq   %rbp
        pushq   %r8
        pushq   %r9
        pushq   %r10
        pushq   %r11
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        movq    %rsp, %rdi
        cld
        call    trap
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %r11
        popq    %r10
        popq    %r9
        popq    %r8
        popq    %rbp
        popq    %rdi
        popq    %rsi
        popq    %rdx
        popq    %rcx
        popq    %rbx
        popq    %rax
        addq    $16, %rsp
        iretq

/* `syscall`: RCX = user RIP, R11 = user RFLAGS, RFLAGS masked by SFMASK
 * (IF, TF, DF, AC cleared). The user's GS base is never changed by the test
 * program, so %gs here is always the CPU's struct percpu (no swapgs):
 * offset 0 the kernel stack top, offset 8 a scratch slot. Like Linux, every
 * register but RAX, RCX and R11 comes back unchanged (the project's raw
 * write in the interrupt handler relies on it). */
        .globl syscall_entry
syscall_entry:
        movq    %rsp, %gs:8
        movq    %rcx, %gs:24            /* the user RIP, for the wake log */
        movq    %gs:0, %rsp
        pushq   %gs:8
        pushq   %r11
        pushq   %rcx
        pushq   %rdi
        pushq   %rsi
        pushq   %rdx
        pushq   %r10
        pushq   %r8
        pushq   %r9
        subq    $8, %rsp                /* 16-byte alignment for the call */
        movq    %r10, %rcx
        movq    %rax, %r9               /* sixth argument: the number */
        call    monitor_syscall
        addq    $8, %rsp
        popq    %r9
        popq    %r8
        popq    %r10
        popq    %rdx
        popq    %rsi
        popq    %rdi
        popq    %rcx
        popq    %r11
        popq    %rsp
        sysretq

/* enter_user(rip, rsp, rflags, arg): iretq to ring 3 with rdi = arg. */
        .globl enter_user
enter_user:
        pushq   $0x1b                   /* SS: user data | RPL 3 */
        pushq   %rsi
        pushq   %rdx
        pushq   $0x23                   /* CS: user code | RPL 3 */
        pushq   %rdi
        movq    %rcx, %rdi
        xorl    %eax, %eax
        xorl    %ebx, %ebx
        xorl    %ecx, %ecx
        xorl    %edx, %edx
        xorl    %esi, %esi
        xorl    %ebp, %ebp
        xorl    %r8d, %r8d
        xorl    %r9d, %r9d
        xorl    %r10d, %r10d
        xorl    %r11d, %r11d
        xorl    %r12d, %r12d
        xorl    %r13d, %r13d
        xorl    %r14d, %r14d
        xorl    %r15d, %r15d
        iretq

        .section .note.GNU-stack, "", @progbits
