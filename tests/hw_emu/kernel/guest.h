/*
 * guest.h - what the level-2 and level-3 guest programs share: their
 * output (CHECK lines on the console and on Bochs's port 0xe9 once
 * have_ports is set), the check counters, a clock and CPU pinning.
 * Included by one .c file per program.
 */
#ifndef UINTR_HWEMU_GUEST_H
#define UINTR_HWEMU_GUEST_H

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int passed, failed, have_ports;

static void emit(const char *line)
{
    size_t n = strlen(line);
    if (write(1, line, n) < 0)
        (void)0;
    if (have_ports)
        for (size_t i = 0; i < n; i++)
            outb((unsigned char)line[i], 0xe9);
}

static void check(const char *name, int ok, const char *fmt, ...)
{
    char detail[400], line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "CHECK %s %s %s\n", name, ok ? "PASS" : "FAIL", detail);
    emit(line);
    if (ok)
        passed++;
    else
        failed++;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/* The file systems the programs that run children need: /proc, /sys, a
 * devtmpfs /dev and pseudo-terminals in /dev/pts. */
static void mount_basics(void)
{
    mkdir("/proc", 0555);
    mkdir("/sys", 0555);
    mkdir("/dev", 0755);
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    mkdir("/dev/pts", 0755);
    mount("devpts", "/dev/pts", "devpts", 0, "ptmxmode=0666");
}

/* Lines of a child's output, read in pieces: line_feed() hands every whole
 * line (or one that fills the buffer) to take(), with its newline; the
 * caller hands the last, unterminated one with line_flush() at the end. */
struct lines {
    char text[600];
    size_t used;
};

static void line_feed(struct lines *l, const char *buf, ssize_t n, void (*take)(void *arg, char *line),
                      void *arg)
{
    for (ssize_t i = 0; i < n; i++) {
        if (l->used < sizeof l->text - 1)
            l->text[l->used++] = buf[i];
        if (buf[i] == '\n' || l->used == sizeof l->text - 1) {
            l->text[l->used] = '\0';
            take(arg, l->text);
            l->used = 0;
        }
    }
}

static void line_flush(struct lines *l, void (*take)(void *arg, char *line), void *arg)
{
    if (l->used) {
        l->text[l->used] = '\0';
        take(arg, l->text);
        l->used = 0;
    }
}

/* The last line the host parses, then power off: Bochs's shutdown port if
 * this program may use it, then the kernel's power-off. */
static void finish(void)
{
    char line[64];
    snprintf(line, sizeof line, "SUMMARY passed=%d failed=%d\n", passed, failed);
    emit(line);
    sync();
    if (ioperm(0x8900, 1, 1) == 0) {
        static const char off[] = "Shutdown";
        for (const char *p = off; *p; p++)
            outb((unsigned char)*p, 0x8900);
    }
    reboot(RB_POWER_OFF);
    for (;;)
        pause();
}

#endif
