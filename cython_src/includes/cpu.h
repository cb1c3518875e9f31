/*
 * cpu.h - side-effect-free probes for UINTR: the CPUID bit and raw syscalls.
 * CPUID.(EAX=7,ECX=0):EDX[5] is UINTR (Intel SDM vol. 2A, CPUID leaf 7).
 */
#ifndef UINTR_LOOP_CPU_H
#define UINTR_LOOP_CPU_H

#include <cpuid.h>
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline int uintr_cpuid_leaf7_edx(unsigned *edx)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return -1;
    *edx = d;
    return 0;
}

/* Returns the syscall's result, or -errno. */
static inline long uintr_raw_syscall2(long nr, long a0, long a1)
{
    long r = syscall(nr, a0, a1);
    return r < 0 ? -errno : r;
}

#endif
