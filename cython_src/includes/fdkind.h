/* fdkind.h - what kind of anonymous-inode fd an fd is, from /proc/self/fd. */
#ifndef UINTR_LOOP_FDKIND_H
#define UINTR_LOOP_FDKIND_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* 1 if fd's link target is `kind` (e.g. "anon_inode:[eventfd]"), 0 if it is
 * something else, `if_unknown` if /proc cannot tell. */
static inline int uintr_fd_is_kind(int fd, const char *kind, int if_unknown)
{
    char path[64], target[64];
    ssize_t n;
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    n = readlink(path, target, sizeof target - 1);
    if (n < 0)
        return if_unknown;
    target[n] = '\0';
    return strcmp(target, kind) == 0;
}

#endif
