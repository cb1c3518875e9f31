/*
 * ctxsnap.h - a snapshot of the calling thread's context variables, and
 * loading one into a context object; ctxsnap.c says why this is what
 * copy_context() gives, at a reference instead of an object.
 *
 * Both need the GIL (or, free-threaded, the caller's own objects).
 */
#ifndef UINTR_LOOP_CTXSNAP_H
#define UINTR_LOOP_CTXSNAP_H

#include <Python.h>

/* New reference to the variables of the thread's current context (the
 * empty ones when it has none yet); NULL with an exception only if even
 * those cannot be made. */
PyObject *uintr_ctx_snapshot(void);

/* Put the snapshot vars (None: the empty ones) into the context object box,
 * which must not be entered; 0, or -1 with an exception. */
int uintr_ctx_load(PyObject *box, PyObject *vars);

/* Load the snapshot vars (None: the empty ones) into box, a context object
 * of the caller's own and not entered, and enter it, as PyContext_Enter()
 * does; 0, or -1 with an exception. */
int uintr_ctx_enter(PyObject *box, PyObject *vars);

/* Leave box, entered by uintr_ctx_enter(), as PyContext_Exit() does; 0, or
 * -1 with an exception. */
int uintr_ctx_exit(PyObject *box);

/* The snapshots' type (the variables' own), set by uintr_ctx_init(). */
extern PyTypeObject *uintr_ctx_snapshot_type;

/* Find that type; 0, or -1 with an exception. Call once, at import. */
int uintr_ctx_init(void);

/* 1 if obj is a snapshot, 0 if anything else (a Context, or whatever a
 * caller passed as one). */
static inline int uintr_ctx_is_snapshot(PyObject *obj)
{
    return Py_TYPE(obj) == uintr_ctx_snapshot_type;
}

#endif
