/* fmt.h - a small vsnprintf for the monitor and the test program (both
 * built without libc): %s %c %d %u %x with the l and ll modifiers, %p, %%.
 * General registers only, so it is safe to build with -mgeneral-regs-only. */
#ifndef HWEMU_FMT_H
#define HWEMU_FMT_H
#include <stdarg.h>
#include <stddef.h>
int fmt_v(char *buf, size_t size, const char *fmt, va_list ap);
int fmt(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#endif
