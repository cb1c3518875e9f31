/*
 * tshandle.h - a threadsafe handle made by the post and run by the drain, in
 * C (mailbox.pxi).
 *
 * Why: in a flood, the post's handle and the drain's step for it are most of
 * what a loop adds to the callback itself. Written in Cython, each field
 * passes through None on the way in (the type's tp_new sets all three
 * before the post sets them) and through temporaries on the way out: some
 * thirty reference-count operations a callback. Here each reference moves
 * once: the post gives the handle its callback, arguments and context, and
 * the drain takes them back out and leaves None.
 *
 * The layout is ThreadsafeHandle's own (mailbox.pxi): three references and a
 * flag. uintr_tshandle_layout_ok() checks it against the type at import, so
 * a change on either side fails there, not in a flood.
 *
 * Why it is safe: a handle is the drain's alone but for cancel() and
 * get_context(), which run under a critical section on the handle; the
 * drain's reads and writes of its fields are under the same one. On a
 * build with the GIL the section compiles to nothing: nothing between its
 * ends runs Python code or releases the GIL.
 */
#ifndef UINTR_LOOP_TSHANDLE_H
#define UINTR_LOOP_TSHANDLE_H

#include <Python.h>
#include "batchlist.h"
#include "callargs.h"
#include "ctxsnap.h"

typedef struct {
    PyObject_HEAD
    PyObject *callback;
    PyObject *args;         /* a tuple */
    PyObject *context;      /* a Context, a snapshot (ctxsnap.h), or None once run */
    int cancelled;
} uintr_tshandle_t;

#ifdef Py_GIL_DISABLED
#define UINTR_TSH_LOCK(h) Py_BEGIN_CRITICAL_SECTION(h)
#define UINTR_TSH_UNLOCK() Py_END_CRITICAL_SECTION()
#else
#define UINTR_TSH_LOCK(h) {
#define UINTR_TSH_UNLOCK() }
#endif

/* 1 if h, a handle of the type whose fields were set to callback, args,
 * context and cancelled (true), has the layout above. */
static inline int uintr_tshandle_layout_ok(PyObject *h, PyObject *callback, PyObject *args,
                                           PyObject *context)
{
    uintr_tshandle_t *t = (uintr_tshandle_t *)h;
    return Py_TYPE(h)->tp_basicsize == (Py_ssize_t)sizeof(uintr_tshandle_t) &&
           t->callback == callback && t->args == args && t->context == context && t->cancelled == 1;
}

/* A handle of type tp for callback(*args), in context, or, when context is
 * None, in a snapshot of the calling thread's context: a new reference, or
 * NULL with an exception. */
static inline PyObject *uintr_tshandle_new(PyTypeObject *tp, PyObject *callback, PyObject *args,
                                           PyObject *context)
{
    PyObject *ctx = context == Py_None ? uintr_ctx_snapshot() : Py_NewRef(context);
    uintr_tshandle_t *t;
    if (ctx == NULL)
        return NULL;
    t = (uintr_tshandle_t *)tp->tp_alloc(tp, 0);      /* zeroed */
    if (t == NULL) {
        Py_DECREF(ctx);
        return NULL;
    }
    t->callback = Py_NewRef(callback);
    t->args = Py_NewRef(args);
    t->context = ctx;
    return (PyObject *)t;
}

/* A new context holding the snapshot: copy_context() at the post. */
static inline PyObject *uintr_tshandle_context_of(PyObject *snapshot)
{
    PyObject *ctx = PyContext_New();
    if (ctx != NULL && uintr_ctx_load(ctx, snapshot) < 0)
        Py_CLEAR(ctx);
    return ctx;
}

#define UINTR_TSH_RAN 0
#define UINTR_TSH_SKIPPED 1

/* The drain's step for handle h, whose reference the caller holds (held: so
 * does someone else, who may ask for its context later): take the callback,
 * its arguments and the context to run them in out of the handle, and run
 * them.
 *
 * The context is the one given at the post, or, for a snapshot, a context of
 * the handle's own when it is held, and otherwise *box: the drain's own
 * context object, made here when NULL, loaded with the snapshot (ctxsnap.c
 * says why that is a copy). A box the callback kept (a Token holds it) is
 * the callback's: *box becomes NULL and the next one is new.
 *
 * UINTR_TSH_RAN, UINTR_TSH_SKIPPED (cancelled), or -1 with the exception set
 * and *failed the callback (a new reference): then a box it ran in is the
 * handle's, for the exception handler to ask for, and *box is NULL. */
static inline int uintr_tshandle_run(PyObject *h, int held, PyObject **box, PyObject **failed)
{
    uintr_tshandle_t *t = (uintr_tshandle_t *)h;
    PyObject *callback = NULL, *args = NULL, *ctx = NULL, *snapshot = NULL;
    int rc = UINTR_TSH_RAN;
    UINTR_TSH_LOCK(h);
    if (t->cancelled) {
        rc = UINTR_TSH_SKIPPED;
    } else {
        callback = t->callback;
        args = t->args;
        t->callback = Py_NewRef(Py_None);
        t->args = Py_NewRef(Py_None);
        if (!uintr_ctx_is_snapshot(t->context)) {
            ctx = Py_NewRef(t->context);
        } else if (held) {
            ctx = uintr_tshandle_context_of(t->context);
            if (ctx != NULL)
                Py_SETREF(t->context, Py_NewRef(ctx));
            else
                rc = -1;
        } else {
            snapshot = t->context;
            t->context = Py_NewRef(Py_None);
        }
    }
    UINTR_TSH_UNLOCK()
    if (rc == UINTR_TSH_SKIPPED)
        return rc;
    if (rc == 0 && ctx == NULL) {
        if (*box == NULL)
            *box = PyContext_New();
        if (*box == NULL)
            rc = -1;
        else
            ctx = Py_NewRef(*box);
    }
    if (rc == 0)
        rc = uintr_call_in_context(ctx, snapshot, callback, args);
    Py_XDECREF(snapshot);
    Py_DECREF(args);
    if (rc < 0) {
        if (ctx != NULL && ctx == *box) {
            Py_SETREF(t->context, *box);    /* the drain's reference, given */
            *box = NULL;
        }
        Py_XDECREF(ctx);
        *failed = callback;
        return -1;
    }
    Py_DECREF(callback);
    Py_DECREF(ctx);
    if (ctx == *box && Py_REFCNT(ctx) > 1) {
        Py_DECREF(ctx);                     /* kept by the callback: never reused */
        *box = NULL;
    }
    return UINTR_TSH_RAN;
}

/* The drain's loop: from items[*i] to items[n - 1], each handle is taken out
 * of its slot (the list no longer keeps it or its context alive), run by
 * uintr_tshandle_run(), held by anyone but the drain or not, and let go.
 * NULL once all have run; else the handle whose step failed, a new
 * reference, at *i, with the exception and *failed as uintr_tshandle_run()
 * leaves them. */
static inline PyObject *uintr_tshandle_drain(PyObject *items, Py_ssize_t *i, Py_ssize_t n,
                                             PyObject **box, PyObject **failed)
{
    PyObject *h;
    for (; *i < n; (*i)++) {
        h = uintr_list_take(items, *i);
        if (uintr_tshandle_run(h, Py_REFCNT(h) > 1, box, failed) < 0)
            return h;
        Py_DECREF(h);
    }
    return NULL;
}

#endif
