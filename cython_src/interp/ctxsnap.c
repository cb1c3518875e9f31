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
 */
#define Py_BUILD_CORE_MODULE 1
#include <Python.h>
#include "internal/pycore_context.h"

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

PyTypeObject *uintr_ctx_snapshot_type;

int uintr_ctx_init(void)
{
    PyObject *empty = empty_vars();
    if (empty == NULL)
        return -1;
    uintr_ctx_snapshot_type = Py_TYPE(empty);
    return 0;
}
