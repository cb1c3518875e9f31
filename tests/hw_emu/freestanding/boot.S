/*
 * boot.S - from the BIOS to 64-bit long mode, for both CPUs.
 *
 * The BIOS loads sector 0 (this file's .boot part) at 0x7c00 and jumps to
 * it in real mode. It reads the rest of the image behind itself with the
 * BIOS disk services (INT 13h, extended read), switches to 32-bit protected
 * mode, builds identity page tables for the low 4 GiB (2 MiB pages, user
 * accessible: the test is one address space shared by the monitor in ring 0
 * and the test program in ring 3), enables long mode and calls
 * monitor_main(0) in monitor.c.
 *
 * The second CPU starts at 0x8000 (the SIPI vector 0x08 the monitor sends),
 * in real mode too, and takes the same path to long mode with the page
 * tables the first CPU built, then calls monitor_main(1).
 */
#define GDT_CODE64 0x08
#define GDT_DATA   0x10
#define GDT_CODE32 0x28

        .section .boot, "ax"
        .code16
        .globl boot_start
boot_start:
        cli
        xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movw    $0x7c00, %sp
        ljmp    $0, $1f
1:      movb    %dl, boot_drive
        movw    $__load_sectors, %ax
        movw    %ax, load_left
load_next:
        movw    load_left, %ax
        testw   %ax, %ax
        jz      load_done
        cmpw    $64, %ax
        jbe     2f
        movw    $64, %ax
2:      movw    %ax, dap_count
        movw    $dap, %si
        movb    $0x42, %ah
        movb    boot_drive, %dl
        int     $0x13
        jc      load_error
        movw    dap_count, %ax
        subw    %ax, load_left
        addw    %ax, dap_lba
        shlw    $5, %ax                 /* sectors * 512 / 16: segment step */
        addw    %ax, dap_seg
        jmp     load_next
load_error:
        movw    $msg_error, %si
3:      lodsb
        testb   %al, %al
        jz      4f
        outb    %al, $0xe9
        jmp     3b
4:      hlt
        jmp     4b
load_done:
        inb     $0x92, %al              /* fast A20 */
        orb     $2, %al
        andb    $0xfe, %al
        outb    %al, $0x92
        jmp     enter_protected

        .balign 4
dap:    .byte   16, 0
dap_count:
        .word   0
        .word   0                       /* offset */
dap_seg:
        .word   0x07e0                  /* segment: 0x7e00, right behind us */
dap_lba:
        .quad   1
load_left:
        .word   0
boot_drive:
        .byte   0
msg_error:
        .asciz  "BOOT: disk read failed\n"

        .section .sig, "a"
        .word   0xaa55

/* ---- real mode -> protected mode -> long mode (both CPUs) ------------- */
        .section .text16, "ax"
        .code16
enter_protected:
        cli
        lgdtl   gdt_desc
        movl    %cr0, %eax
        orl     $1, %eax
        movl    %eax, %cr0
        ljmpl   $GDT_CODE32, $protected32

        .code32
protected32:
        movw    $GDT_DATA, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movw    %ax, %fs
        movw    %ax, %gs
        movl    $0x7c00, %esp
        /* zero .bss (page tables, stacks, every zero-initialised variable) */
        movl    $__bss_start, %edi
        movl    $__bss_end, %ecx
        subl    %edi, %ecx
        shrl    $2, %ecx
        xorl    %eax, %eax
        cld
        rep stosl
        /* PML4[0] -> PDPT; PDPT[0..3] -> PD0..PD3; PDn[i] = 2 MiB page */
        movl    $boot_pdpt, %eax
        orl     $7, %eax                /* present, writable, user */
        movl    %eax, boot_pml4
        movl    $boot_pd, %eax
        orl     $7, %eax
        xorl    %ecx, %ecx
5:      movl    %eax, boot_pdpt(,%ecx,8)
        addl    $0x1000, %eax
        incl    %ecx
        cmpl    $4, %ecx
        jb      5b
        movl    $0x87, %eax             /* present, writable, user, 2 MiB */
        xorl    %ecx, %ecx
6:      movl    %eax, boot_pd(,%ecx,8)
        addl    $0x200000, %eax
        incl    %ecx
        cmpl    $2048, %ecx
        jb      6b
        call    enter_long
        .code64
        movq    $boot_stack_top, %rsp
        xorl    %edi, %edi
        call    monitor_main
7:      hlt
        jmp     7b

        .code32
/* PAE, CR3, EFER.LME|SCE, paging; returns into 64-bit code behind the call */
enter_long:
        popl    %ebx                    /* where to continue, in 64-bit mode */
        movl    %cr4, %eax
        orl     $0x20, %eax             /* PAE */
        movl    %eax, %cr4
        movl    $boot_pml4, %eax
        movl    %eax, %cr3
        movl    $0xc0000080, %ecx       /* IA32_EFER */
        rdmsr
        orl     $0x101, %eax            /* LME | SCE (syscall/sysret) */
        wrmsr
        movl    %cr0, %eax
        orl     $0x80000001, %eax       /* PG | PE */
        movl    %eax, %cr0
        pushl   $GDT_CODE64
        pushl   %ebx
        lret

        .balign 8
gdt_desc:
        .word   boot_gdt_end - boot_gdt - 1
        .long   boot_gdt

/* ---- the second CPU: SIPI vector 0x08 -> 0x0800:0000 ------------------ */
        .section .ap, "ax"
        .code16
        .globl ap_start
ap_start:
        cli
        ljmp    $0, $ap_real
ap_real:
        xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        lgdtl   gdt_desc
        movl    %cr0, %eax
        orl     $1, %eax
        movl    %eax, %cr0
        ljmpl   $GDT_CODE32, $ap_protected32

        .code32
ap_protected32:
        movw    $GDT_DATA, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movl    $ap_boot_stack_top, %esp
        call    enter_long
        .code64
        movl    $1, %eax
        cpuid
        shrl    $24, %ebx               /* initial APIC ID: 1 for the second CPU */
        movq    ap_stack_top, %rsp
        movl    %ebx, %edi
        call    monitor_main
8:      hlt
        jmp     8b

        .balign 16
        .space  256
ap_boot_stack_top:

/* ---- GDT: the monitor adds the TSS descriptors at run time ------------ */
        .section .data
        .balign 16
        .globl boot_gdt, boot_gdt_end
boot_gdt:
        .quad   0                       /* 0x00 null */
        .quad   0x00209a0000000000      /* 0x08 kernel code, 64-bit */
        .quad   0x00cf92000000ffff      /* 0x10 kernel data */
        .quad   0x00cff2000000ffff      /* 0x18 user data (sysret: STAR+8) */
        .quad   0x0020fa0000000000      /* 0x20 user code, 64-bit (STAR+16) */
        .quad   0x00cf9a000000ffff      /* 0x28 kernel code, 32-bit (boot only) */
        .quad   0, 0                    /* 0x30 TSS of CPU 0 */
        .quad   0, 0                    /* 0x40 TSS of CPU 1 */
boot_gdt_end:

        .section .bss
        .balign 4096
        .globl boot_pml4, boot_pdpt, boot_pd
boot_pml4:
        .space  4096
boot_pdpt:
        .space  4096
boot_pd:
        .space  4096 * 4
        .balign 16
        .space  16384
boot_stack_top:

        .section .note.GNU-stack, "", @progbits
