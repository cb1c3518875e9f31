/* memfd.h - the page that holds a loop's UPID table: a memfd mapped shared,
 * so a fork shares it and other processes can map it (vectorfd.h).
 *
 * The size is sealed (F_SEAL_SHRINK | F_SEAL_GROW, then F_SEAL_SEAL): the
 * memfd travels to other processes inside vector fds, and a holder that could
 * ftruncate it would make every mapping of it raise SIGBUS on access. */
#ifndef UINTR_LOOP_MEMFD_H
#define UINTR_LOOP_MEMFD_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

static inline void *uintr_map_table(int *fd_out, size_t size)
{
    void *p;
    int fd = memfd_create("uintr_loop-upid", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return NULL;
    if (ftruncate(fd, (off_t)size) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    *fd_out = fd;
    return p;
}

static inline void uintr_unmap_table(void *p, size_t size, int fd)
{
    if (p)
        munmap(p, size);
    if (fd >= 0)
        close(fd);
}

#endif
