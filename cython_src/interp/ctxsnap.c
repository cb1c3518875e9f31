/*
 * ctxsnap.c - a context's variables as a value, and one context object
 * reused to run many callbacks (ctxsnap.h).
 *
 * A Context is a mutable box around an immutable mapping (a HAMT): every
 * ContextVar.set() puts a new mapping in the box, and copy_context() is a new
 * box around the same mapping. So the mapping alone is a snapshot: what a
 * callback must see is the mapping of the poster's context at the post, and
 * holding it costs one reference where copy_context() costs an object.
 *
 * Running the callback needs a box again, but not a new one each time: a box
 * nobody else holds (its reference count is the drain's one) after the
 * callback exited can take the next snapshot, and is indistinguishable from a
 * fresh copy to the next callback. Nothing can observe the reuse: Python
 * reaches the running box only through a ContextVar.set() Token or a handle's
 * get_context(), and either holds a reference, which stops the reuse. The
 * mapping is swapped only while the box is not entered in any thread; the
 * next PyContext_Enter() bumps the thread's context version, which
 * invalidates every ContextVar's cached value. The layout is the
 * interpreter's own (internal/pycore_context.h, the same from 3.11 to
 * 3.15): this file alone is compiled as a core module, per Python version,
 * like gilword.c.
 *
 * Entering and leaving the box are PyContext_Enter() and PyContext_Exit()
 * for a box known to be one: an exact Context, the drain's own, entered
 * only by the drain around one callback, so the checks those make of their
 * argument are the drain's to make once (uintr_ctx_enter checks the one
 * that can fail). What is left is theirs, step for step: the previous
 * context is kept in the box, the thread's context becomes the box, and
 * the thread's context version moves on, so a ContextVar's cached value is
 * never read across the switch. From 3.14 a context switch is also told to
 * the interpreter's context watchers: while any is set, both go through
 * the API, which tells them.
 */
#define Py_BUILD_CORE_MODULE 1
#include <Python.h>
#include "internal/pycore_context.h"
#if PY_VERSION_HEX >= 0x030E0000
#include "internal/pycore_interp_structs.h"
#endif

#include "ctxsnap.h"

/* The variables of a context nobody has set anything in (one object, kept). */
static PyObject *empty_vars(void)
{
    static PyObject *empty;
    if (empty == NULL) {
        PyContext *ctx = (PyContext *)PyContext_New();
        if (ctx == NULL)
            return NULL;
        empty = (PyObject *)ctx->ctx_vars;
        Py_INCREF(empty);
        Py_DECREF(ctx);
    }
    return empty;
}

PyObject *uintr_ctx_snapshot(void)
{
    PyContext *ctx = (PyContext *)PyThreadState_Get()->context;
    PyObject *vars = ctx == NULL ? empty_vars() : (PyObject *)ctx->ctx_vars;
    Py_XINCREF(vars);
    return vars;
}

int uintr_ctx_load(PyObject *box, PyObject *vars)
{
    PyContext *ctx = (PyContext *)box;
    if (!PyContext_CheckExact(box) || ctx->ctx_entered) {
        PyErr_SetString(PyExc_RuntimeError, "uintr_loop: only a context not in use takes a snapshot");
        return -1;
    }
    if (vars == Py_None && (vars = empty_vars()) == NULL)
        return -1;
    Py_INCREF(vars);
    Py_SETREF(ctx->ctx_vars, (PyHamtObject *)vars);
    return 0;
}

/* 1 if a context switch must be told to someone (3.14's context watchers). */
static inline int ctx_watched(PyThreadState *ts)
{
#if PY_VERSION_HEX >= 0x030E0000
    return ts->interp->active_context_watchers != 0;
#else
    (void)ts;
    return 0;
#endif
}

int uintr_ctx_enter(PyObject *box, PyObject *vars)
{
    PyContext *ctx = (PyContext *)box;
    PyThreadState *ts;
    if ((PyObject *)ctx->ctx_vars != vars && uintr_ctx_load(box, vars) < 0)
        return -1;          /* not a context, or entered */
    ts = PyThreadState_Get();
    if (ctx_watched(ts) || ctx->ctx_entered)
        return PyContext_Enter(box);        /* the watchers told, or its error */
    ctx->ctx_prev = (PyContext *)ts->context;   /* the thread's reference, kept */
    ctx->ctx_entered = 1;
    ts->context = Py_NewRef(box);
    ts->context_ver++;
    return 0;
}

int uintr_ctx_exit(PyObject *box)
{
    PyContext *ctx = (PyContext *)box;
    PyThreadState *ts = PyThreadState_Get();
    if (ctx_watched(ts) || !ctx->ctx_entered || ts->context != box)
        return PyContext_Exit(box);     /* the watchers told, or its error */
    Py_SETREF(ts->context, (PyObject *)ctx->ctx_prev);
    ctx->ctx_prev = NULL;
    ctx->ctx_entered = 0;
    ts->context_ver++;
    return 0;
}

PyTypeObject *uintr_ctx_snapshot_type;

int uintr_ctx_init(void)
{
    PyObject *empty = empty_vars();
    if (empty == NULL)
        return -1;
    uintr_ctx_snapshot_type = Py_TYPE(empty);
    return 0;
}
