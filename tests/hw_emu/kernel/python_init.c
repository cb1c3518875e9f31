/*
 * python_init.c - /init of level 4: CPython and the project under the
 * level-2 kernel. The initramfs holds the project's venv interpreter in
 * /python, the uintr_loop package in its site-packages, and /project with
 * pyproject.toml and tests/test_hardware_real.py (tests/hw_emu/python_level.py
 * puts them there).
 *
 * Mounts /proc, /sys, /dev (devtmpfs) and /dev/pts, then runs Python four
 * times, one after another, from /project: each run's output (stdout and
 * stderr, through a pipe) is copied out as "py| name| line", and the checks
 * are decided here from what it printed and how it exited, so that a Python
 * that crashes or hangs still gives a FAIL line. A run still going at its
 * limit (guest seconds) is killed with its process group.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "guest.h"

#define MAX_LINES 400

struct run {
    const char *name;
    int status, timed_out, nlines;
    double seconds;
    char *lines[MAX_LINES];             /* what it printed, without the newline */
};

static char *env_base[] = {
    "PATH=/python/bin", "PYTHONHOME=/python", "LD_LIBRARY_PATH=/python/lib:/lib/x86_64-linux-gnu",
    "HOME=/tmp", "TMPDIR=/tmp", "TERM=dumb", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1",
    "PYTHONUTF8=1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1", NULL,
};

static void keep_line(void *arg, char *line)
{
    struct run *r = arg;
    char out[700];
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\r' || line[n - 1] == '\n'))
        line[--n] = '\0';
    snprintf(out, sizeof out, "py| %s| %s\n", r->name, line);
    emit(out);
    if (r->nlines < MAX_LINES)
        r->lines[r->nlines++] = strdup(line);
}

/* Runs /python/bin/python3 with argv (after argv[0]) and one extra environment entry (or NULL). */
static void run_python(struct run *r, const char *name, double limit, const char *extra_env, char *const argv[])
{
    char *envp[16];
    int e = 0;
    for (char **p = env_base; *p; p++)
        envp[e++] = *p;
    if (extra_env)
        envp[e++] = (char *)extra_env;
    envp[e] = NULL;

    memset(r, 0, sizeof *r);
    r->name = name;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        r->status = -1;
        return;
    }
    double t0 = now();
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        if (chdir("/project") < 0)
            _exit(126);
        execve("/python/bin/python3", argv, envp);
        _exit(127);
    }
    close(fds[1]);

    struct lines lines = {0};
    int exited = 0, eof = 0;
    for (;;) {
        if (!exited && now() - t0 > limit) {
            r->timed_out = 1;
            kill(-pid, SIGKILL);
            waitpid(pid, &r->status, 0);
            exited = 1;
        }
        if (!exited && waitpid(pid, &r->status, WNOHANG) == pid)
            exited = 1;
        if (eof && exited)
            break;
        if (eof) {
            usleep(10000);
            continue;
        }
        struct pollfd p = {fds[0], POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        char buf[512];
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            eof = 1;                    /* every writer (its threads and children too) is gone */
            continue;
        }
        line_feed(&lines, buf, n, keep_line, r);
        if (exited && r->timed_out)
            break;
    }
    line_flush(&lines, keep_line, r);
    close(fds[0]);
    kill(-pid, SIGKILL);                /* what it left behind */
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    r->seconds = now() - t0;
}

static int exited_zero(const struct run *r)
{
    return !r->timed_out && r->status >= 0 && WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}

static const char *how(const struct run *r, char *buf, size_t len)
{
    if (r->timed_out)
        snprintf(buf, len, "killed at its limit after %.0f s", r->seconds);
    else if (r->status < 0)
        snprintf(buf, len, "did not start");
    else if (WIFEXITED(r->status))
        snprintf(buf, len, "exit %d", WEXITSTATUS(r->status));
    else
        snprintf(buf, len, "killed by signal %d", WTERMSIG(r->status));
    return buf;
}

/* The value after "key" on the first line that starts with it (spaces skipped), or NULL. */
static const char *value_of(const struct run *r, const char *key)
{
    size_t k = strlen(key);
    for (int i = 0; i < r->nlines; i++)
        if (!strncmp(r->lines[i], key, k)) {
            const char *v = r->lines[i] + k;
            while (*v == ' ')
                v++;
            return v;
        }
    return NULL;
}

static void check_version(void)
{
    struct run r;
    char h[64];
    char *argv[] = {"python3", "-c", "import sys; print('VERSION', sys.version.split()[0], sys.prefix)", NULL};
    run_python(&r, "version", 600, NULL, argv);
    const char *v = value_of(&r, "VERSION");
    check("python_starts", exited_zero(&r) && v != NULL, "%s, %.1f s guest time: %s", how(&r, h, sizeof h),
          r.seconds, v ? v : "no VERSION line");
}

static void check_probe(void)
{
    struct run r;
    char h[64], mode[64] = "", abi[64] = "";
    char *argv[] = {"python3", "-m", "uintr_loop", "info", NULL};
    run_python(&r, "probe", 600, NULL, argv);
    const char *m = value_of(&r, "mode:");
    const char *a = value_of(&r, "kernel ABI:");
    if (m)
        sscanf(m, "%63s", mode);
    if (a)
        sscanf(a, "%63s", abi);
    int ok = exited_zero(&r) && !strcmp(mode, "hardware") && abi[0] && strcmp(abi, "none");
    check("capability_probe_says_hardware", ok, "%s, %.1f s guest time: mode %s, kernel ABI %s", how(&r, h, sizeof h),
          r.seconds, mode[0] ? mode : "(no mode line)", abi[0] ? abi : "(no kernel ABI line)");
}

static void check_hardware_loop(void)
{
    struct run r;
    char h[64];
    char *argv[] = {"python3", "-c",
                    "import asyncio, uintr_loop\n"
                    "loop = uintr_loop.new_event_loop(base='asyncio')\n"
                    "loop.run_until_complete(asyncio.sleep(0.01))\n"
                    "print('DELIVERY', loop.delivery_mode, loop.statistics().mode)\n"
                    "loop.close()\n",
                    NULL};
    run_python(&r, "loop", 600, "UINTR_LOOP_MODE=hardware", argv);
    const char *d = value_of(&r, "DELIVERY");
    int ok = exited_zero(&r) && d && !strcmp(d, "hardware hardware");
    check("hardware_mode_loop", ok, "%s, %.1f s guest time: UINTR_LOOP_MODE=hardware, base asyncio: delivery_mode and "
          "statistics().mode: %s", how(&r, h, sizeof h), r.seconds, d ? d : "(no DELIVERY line)");
}

/* "N word" counts from pytest's last line, e.g. "===== 6 passed in 12.34s =====". */
static int count_of(const char *line, const char *word)
{
    const char *p = line;
    size_t w = strlen(word);
    while ((p = strstr(p, word)) != NULL) {
        const char *q = p;
        if (q > line + 1 && q[-1] == ' ' && (q[w] == ' ' || q[w] == ',' || q[w] == '\0')) {
            q -= 2;
            while (q > line && q[-1] >= '0' && q[-1] <= '9')
                q--;
            return atoi(q);
        }
        p += w;
    }
    return 0;
}

static void check_pytest(void)
{
    struct run r;
    char h[64];
    char *argv[] = {"python3", "-m", "pytest", "-v", "-p", "no:cacheprovider", "-p", "pytest_asyncio.plugin",
                    "-p", "pytest_timeout", "tests/test_hardware_real.py", NULL};
    run_python(&r, "pytest", 3000, NULL, argv);
    static const char prefix[] = "tests/test_hardware_real.py::";
    int tests = 0, tests_passed = 0;
    for (int i = 0; i < r.nlines; i++) {
        char name[160], outcome[32];
        if (strncmp(r.lines[i], prefix, sizeof prefix - 1) ||
            sscanf(r.lines[i] + sizeof prefix - 1, "%159s %31s", name, outcome) != 2)
            continue;
        char check_name[200];
        snprintf(check_name, sizeof check_name, "pytest_%s", name);
        tests++;
        tests_passed += !strcmp(outcome, "PASSED");
        check(check_name, !strcmp(outcome, "PASSED"), "%s", outcome);
    }
    const char *summary = NULL;
    for (int i = r.nlines - 1; i >= 0 && !summary; i--)
        if (!strncmp(r.lines[i], "==", 2) && strstr(r.lines[i], " in "))
            summary = r.lines[i];
    int passed = summary ? count_of(summary, "passed") : 0, skipped = summary ? count_of(summary, "skipped") : 0;
    int failed = summary ? count_of(summary, "failed") : 0, errors = summary ? count_of(summary, "error") +
                 count_of(summary, "errors") : 0;
    int ok = exited_zero(&r) && summary && tests > 0 && passed == tests && tests_passed == tests && !skipped &&
             !failed && !errors;
    check("pytest_test_hardware_real", ok, "%s, %.1f s guest time: %d tests, %d passed, %d skipped, %d failed, "
          "%d errors", how(&r, h, sizeof h), r.seconds, tests, passed, skipped, failed, errors);
}

int main(void)
{
    mount_basics();
    mkdir("/tmp", 01777);
    have_ports = ioperm(0xe9, 1, 1) == 0;

    char line[128];
    snprintf(line, sizeof line, "CPUS online=%ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    emit(line);

    check_version();
    check_probe();
    check_hardware_loop();
    check_pytest();
    finish();
}
