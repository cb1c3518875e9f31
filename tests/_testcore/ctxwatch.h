/*
 * ctxwatch.h - TEST-ONLY: a context watcher (3.14's PyContext_AddWatcher)
 * that counts the context switches it is told of, for the test that the
 * drain's own enter and leave (cython_src/interp/ctxsnap.c) tell them.
 * Before 3.14 there are no watchers: adding one returns -2.
 */
#ifndef UINTR_TEST_CTXWATCH_H
#define UINTR_TEST_CTXWATCH_H

#include <Python.h>

static Py_ssize_t ctxwatch_switches;

#if PY_VERSION_HEX >= 0x030E0000
static int ctxwatch_seen(PyContextEvent event, PyObject *ctx)
{
    (void)ctx;
    if (event == Py_CONTEXT_SWITCHED)
        ctxwatch_switches++;
    return 0;
}

static int ctxwatch_add(void)
{
    return PyContext_AddWatcher(ctxwatch_seen);
}

static int ctxwatch_clear(int id)
{
    return PyContext_ClearWatcher(id);
}
#else
static int ctxwatch_add(void)
{
    return -2;
}

static int ctxwatch_clear(int id)
{
    (void)id;
    return 0;
}
#endif

#endif
