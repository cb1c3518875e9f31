/* Does this valgrind record the fd that getsockopt(SO_PEERPIDFD) makes?
 *
 * Valgrind 3.24+ reports the use of a closed fd under --track-fds; it learns
 * of new fds from the syscalls it knows make one. getsockopt(SO_PEERPIDFD)
 * (Linux 6.5+) makes one without valgrind noticing (seen: 3.27.1), so the
 * number, reused from an fd closed before, reads as "closed already" where
 * it is polled and closed. tests/_memcheck.py runs this under memcheck: an
 * fd error here means the gap is there, and only then are the entries of
 * tests/valgrind/peer_pidfd.supp used. Prints "pidfd N" (or "no pidfd" where
 * the kernel does not have SO_PEERPIDFD: nothing to probe). */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

int main(void)
{
    int sv[2], pipefd[2], pidfd = -1;
    socklen_t len = sizeof pidfd;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || pipe(pipefd) < 0)
        return 2;
    close(pipefd[0]);               /* numbers valgrind knows as closed... */
    close(pipefd[1]);
    if (getsockopt(sv[0], SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0) {
        printf("no pidfd\n");
        return 0;
    }
    struct pollfd p = {pidfd, POLLIN, 0};   /* ...one of which the pidfd reuses */
    poll(&p, 1, 0);
    close(pidfd);
    close(sv[0]);
    close(sv[1]);
    printf("pidfd %d\n", pidfd);
    return 0;
}
