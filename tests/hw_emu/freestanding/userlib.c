/*
 * userlib.c - the few C library functions the project's backend
 * (cython_src/hw/uintr_hw.c) calls, for the ring-3 test program, with no
 * libc under it: syscall(), errno, fcntl(), close(), write(),
 * pthread_self(), strcmp(), memset(), memcpy(). Each system call is a
 * `syscall` instruction into the test monitor, which answers with Linux's
 * numbers and conventions (-errno in RAX).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

static __thread int thread_errno;

int *__errno_location(void)
{
    return &thread_errno;
}

static long raw_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
    long ret;
    register long r10 __asm__("r10") = a3;
    register long r8 __asm__("r8") = a4;
    register long r9 __asm__("r9") = a5;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "0"(nr), "D"(a0), "S"(a1), "d"(a2), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

static long set_errno(long r)
{
    if (r < 0 && r > -4096) {
        thread_errno = (int)-r;
        return -1;
    }
    return r;
}

long syscall(long nr, ...)
{
    va_list ap;
    long a[6];
    va_start(ap, nr);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    return set_errno(raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]));
}

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    long arg;
    va_start(ap, cmd);
    arg = va_arg(ap, long);
    va_end(ap);
    return (int)set_errno(raw_syscall(72, fd, cmd, arg, 0, 0, 0));
}

int close(int fd)
{
    return (int)set_errno(raw_syscall(3, fd, 0, 0, 0, 0, 0));
}

long write(int fd, const void *buf, size_t n)
{
    return set_errno(raw_syscall(1, fd, (long)buf, (long)n, 0, 0, 0));
}

/* The thread pointer: %fs:0 holds its own address (monitor.c sets it up). */
unsigned long pthread_self(void)
{
    unsigned long tp;
    __asm__ volatile("movq %%fs:0, %0" : "=r"(tp));
    return tp;
}

int strcmp(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return (unsigned char)*a - (unsigned char)*b;
}

void *memset(void *d, int c, size_t n)
{
    volatile unsigned char *p = d;   /* volatile: no call back into memset */
    while (n--)
        *p++ = (unsigned char)c;
    return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
    volatile unsigned char *p = d;
    const unsigned char *q = s;
    while (n--)
        *p++ = *q++;
    return d;
}
