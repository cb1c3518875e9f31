/*
 * intel_runner.c - /init of level 2-intel: runs Intel's UINTR selftests
 * (built by tests/hw_emu/hw_emu.py from sources the user put in the cache,
 * never part of this repository) one after another under the level-2
 * kernel, and says for each one what it did.
 *
 * /intel/tests lists them, one a line: "name timeout-seconds [args...]",
 * the program being /intel/name. Each runs in its own session with a
 * pseudo-terminal as stdin, stdout and stderr, so that its stdio is line
 * buffered as in a terminal (through a pipe, lines printed before a fork()
 * would be printed again by the child). Every line it prints is copied out
 * as "intel| name| line"; then one CHECK line: PASS when it exited with 0
 * within its time, printed at least one "[OK]" and no "[FAIL]" or "[SKIP]".
 * A test still running at its timeout is killed with its process group.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>

#include "guest.h"

struct result {
    const char *name;
    int ok, fail, skip;
    char first_bad[160];
};

static void take_line(void *arg, char *line)
{
    struct result *res = arg;
    const char *name = res->name;
    char out[600];
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\r' || line[n - 1] == '\n'))
        line[--n] = '\0';
    snprintf(out, sizeof out, "intel| %s| %s\n", name, line);
    emit(out);
    int bad = 0;
    if (!strncmp(line, "[OK]", 4))
        res->ok++;
    else if (!strncmp(line, "[FAIL]", 6))
        res->fail++, bad = 1;
    else if (!strncmp(line, "[SKIP]", 6))
        res->skip++, bad = 1;
    if (bad && !res->first_bad[0]) {
        snprintf(res->first_bad, sizeof res->first_bad, "%s", line);
        for (char *p = res->first_bad; *p; p++)
            if (*p == '\t')
                *p = ' ';
    }
}

static int open_pty(char *slave, size_t len)
{
    int m = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    int unlock = 0, n = -1;
    if (m < 0 || ioctl(m, TIOCSPTLCK, &unlock) < 0 || ioctl(m, TIOCGPTN, &n) < 0)
        return -1;
    snprintf(slave, len, "/dev/pts/%d", n);
    return m;
}

static void run_test(char *spec)
{
    char *argv[16], *save = NULL, path[128], slave[64];
    int argc = 0;
    for (char *tok = strtok_r(spec, " \t\n", &save); tok && argc < 15; tok = strtok_r(NULL, " \t\n", &save))
        argv[argc++] = tok;
    if (argc < 2)
        return;
    const char *name = argv[0];
    double timeout = atof(argv[1]);
    snprintf(path, sizeof path, "/intel/%s", name);
    argv[1] = path;                     /* argv of the test: path, then its arguments */
    argv[argc] = NULL;
    char args[128] = "";
    for (int i = 2; i < argc; i++) {
        size_t l = strlen(args);
        snprintf(args + l, sizeof args - l, "%s%s%s", i == 2 ? " (args " : " ", argv[i], i + 1 == argc ? ")" : "");
    }

    struct result res = {.name = name};
    char check_name[96];
    snprintf(check_name, sizeof check_name, "intel_%s", name);
    int master = open_pty(slave, sizeof slave);
    if (master < 0) {
        check(check_name, 0, "no pseudo-terminal (errno %d)", errno);
        return;
    }
    int s = open(slave, O_RDWR | O_NOCTTY);
    struct termios t;
    if (s >= 0 && tcgetattr(s, &t) == 0) {
        t.c_oflag &= ~(tcflag_t)ONLCR;
        t.c_lflag &= ~(tcflag_t)(ECHO | ICANON);
        tcsetattr(s, TCSANOW, &t);
    }
    double t0 = now();
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        dup2(s, 0);
        dup2(s, 1);
        dup2(s, 2);
        if (s > 2)
            close(s);
        execv(path, &argv[1]);
        _exit(127);
    }
    if (s >= 0)
        close(s);

    struct lines lines = {0};
    int status = 0, exited = 0, timed_out = 0, eof = 0;
    double drain_until = 0;
    for (;;) {
        double left = t0 + timeout - now();
        if (!exited && left <= 0) {
            timed_out = 1;
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            exited = 1;
            drain_until = now() + 2.0;
        }
        if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
            exited = 1;
            kill(-pid, SIGKILL);        /* what it left behind */
            drain_until = now() + 2.0;
        }
        if (eof && exited)
            break;
        if (exited && now() > drain_until)
            break;
        if (eof) {
            usleep(10000);
            continue;
        }
        struct pollfd p = {master, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        char buf[256];
        ssize_t n = read(master, buf, sizeof buf);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            eof = 1;                    /* EIO: no process holds the terminal any more */
            continue;
        }
        line_feed(&lines, buf, n, take_line, &res);
    }
    line_flush(&lines, take_line, &res);
    close(master);
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;                               /* orphans of the test, reparented to init */

    double took = now() - t0;
    char how[64];
    if (timed_out)
        snprintf(how, sizeof how, "killed after its %.0f s", timeout);
    else if (WIFEXITED(status))
        snprintf(how, sizeof how, "exit %d", WEXITSTATUS(status));
    else
        snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(status));
    int ok = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0 && res.ok > 0 && !res.fail && !res.skip;
    check(check_name, ok, "%s%s, %.3f s guest time: [OK] %d, [FAIL] %d, [SKIP] %d%s%s", how, args, took,
          res.ok, res.fail, res.skip, res.first_bad[0] ? "; first: " : "", res.first_bad);
}

int main(void)
{
    mount_basics();
    have_ports = ioperm(0xe9, 1, 1) == 0;

    char line[128];
    snprintf(line, sizeof line, "CPUS online=%ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    emit(line);

    FILE *list = fopen("/intel/tests", "r");
    if (!list) {
        check("intel_tests_list", 0, "no /intel/tests in the initramfs");
        finish();
    }
    char spec[512];
    while (fgets(spec, sizeof spec, list))
        if (spec[0] != '#' && spec[0] != '\n')
            run_test(spec);
    fclose(list);
    finish();
}
