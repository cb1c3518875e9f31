/*
 * threadsafe.h - call_soon_threadsafe(callback, *args, context=None) as a C
 * function bound to a mailbox (mailbox.pxi): what a loop of the uvloop base
 * has as its call_soon_threadsafe.
 *
 * Why: in a flood the post is half of what a loop adds to each callback. A
 * Cython method with *args and a keyword argument takes its arguments
 * through a general parser, a fifth of a post's cost; the Cython post then
 * moved each reference it touched through temporaries. Here the arguments
 * come as the vectorcall's array (the callback is the first item, the rest
 * are the arguments' tuple, and the one keyword is looked for in the names
 * only when there are any), and the post itself is C: the handle
 * (tshandle.h), the test for closed and the append (model step M). What is
 * rare stays in Cython: a first handle's wakeup (uintr_wake_fn), and debug
 * mode's or a closed loop's whole post (uintr_post_fn).
 *
 * The mailbox's fields are read through a mirror of Mailbox's layout (its
 * virtual table, then its fields in declaration order).
 * uintr_mailbox_layout_ok() checks the mirror against the mailbox at every
 * binding, so a change on either side fails the first loop made, not a
 * flood.
 *
 * Why it is safe: it is Mailbox.post's step M as mailbox.pxi describes it,
 * under the same critical section on a free-threaded build and with the GIL
 * held on the others, where nothing between the test and the append runs
 * Python code: the handle is built before, the wakeup is posted after.
 */
#ifndef UINTR_LOOP_THREADSAFE_H
#define UINTR_LOOP_THREADSAFE_H

#include <Python.h>
#include <stddef.h>
#include "batchlist.h"
#include "tshandle.h"

/* Mailbox.post: a new reference to the handle, or NULL with an exception. */
typedef PyObject *(*uintr_post_fn)(PyObject *mailbox, PyObject *callback, PyObject *args,
                                   PyObject *context);

/* The wakeup after a first handle, given the mailbox's port as read with
 * the append (a Port, or None once the loop closed): 0, or -1 with an
 * exception. */
typedef int (*uintr_wake_fn)(PyObject *port);

typedef struct {
    PyObject_HEAD
    void *vtab;
    PyObject *items;        /* a list of handles */
    PyObject *port;         /* a Port, or None once closed */
    PyObject *loop;
    int debug;
    int drain_scheduled;
    int closed;
} uintr_mailbox_head_t;

static PyTypeObject *uintr_threadsafe_handle_type;
static uintr_post_fn uintr_threadsafe_post;
static uintr_wake_fn uintr_threadsafe_wake;

/* Once, at import: the handles' type and Cython's parts of the post. */
static inline void uintr_threadsafe_init(PyTypeObject *handle_type, uintr_post_fn post,
                                         uintr_wake_fn wake)
{
    uintr_threadsafe_handle_type = handle_type;
    uintr_threadsafe_post = post;
    uintr_threadsafe_wake = wake;
}

/* 1 if mailbox's fields, whose values and whose int fields' offsets the
 * caller gives, are where the mirror reads them. */
static inline int uintr_mailbox_layout_ok(PyObject *mailbox, PyObject *items, PyObject *port,
                                          PyObject *loop, Py_ssize_t debug_at, Py_ssize_t closed_at)
{
    uintr_mailbox_head_t *m = (uintr_mailbox_head_t *)mailbox;
    return m->items == items && m->port == port && m->loop == loop &&
           debug_at == (Py_ssize_t)offsetof(uintr_mailbox_head_t, debug) &&
           closed_at == (Py_ssize_t)offsetof(uintr_mailbox_head_t, closed);
}

/* Mailbox.post, in C where it is not rare: the handle (a new reference), or
 * NULL with an exception. */
static inline PyObject *uintr_mailbox_post(PyObject *mailbox, PyObject *callback, PyObject *args,
                                           PyObject *context)
{
    uintr_mailbox_head_t *m = (uintr_mailbox_head_t *)mailbox;
    PyObject *handle, *port = NULL;
    int closed, first = 0;
    if (m->debug || m->closed)
        return uintr_threadsafe_post(mailbox, callback, args, context);
    handle = uintr_tshandle_new(uintr_threadsafe_handle_type, callback, args, context);
    if (handle == NULL)
        return NULL;
#ifdef Py_GIL_DISABLED
    Py_BEGIN_CRITICAL_SECTION(mailbox);
#endif
    closed = m->closed;
    if (!closed) {
        /* not first: a post is already on its way */
        first = uintr_list_push(m->items, handle);
        if (first == 1)
            port = Py_NewRef(m->port);
    }
#ifdef Py_GIL_DISABLED
    Py_END_CRITICAL_SECTION();
#endif
    if (closed || first < 0) {
        if (closed)
            PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        Py_DECREF(handle);
        return NULL;
    }
    if (first && uintr_threadsafe_wake(port) < 0)
        Py_CLEAR(handle);
    Py_XDECREF(port);
    return handle;
}

static PyObject *uintr_threadsafe_call(PyObject *mailbox, PyObject *const *argv, Py_ssize_t nargs,
                                       PyObject *kwnames)
{
    PyObject *callback = nargs > 0 ? argv[0] : NULL;
    PyObject *context = Py_None;
    PyObject *args, *handle;
    Py_ssize_t i, nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_CompareWithASCIIString(name, "context") == 0) {
            context = argv[nargs + i];
        } else if (PyUnicode_CompareWithASCIIString(name, "callback") == 0 && nargs == 0) {
            callback = argv[nargs + i];
        } else if (PyUnicode_CompareWithASCIIString(name, "callback") == 0) {
            PyErr_SetString(PyExc_TypeError,
                            "call_soon_threadsafe() got multiple values for argument 'callback'");
            return NULL;
        } else {
            PyErr_Format(PyExc_TypeError,
                         "call_soon_threadsafe() got an unexpected keyword argument '%U'", name);
            return NULL;
        }
    }
    if (callback == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "call_soon_threadsafe() missing 1 required positional argument: 'callback'");
        return NULL;
    }
    args = PyTuple_New(nargs > 1 ? nargs - 1 : 0);     /* none: the shared empty tuple */
    if (args == NULL)
        return NULL;
    for (i = 1; i < nargs; i++)
        PyTuple_SET_ITEM(args, i - 1, Py_NewRef(argv[i]));
    handle = uintr_mailbox_post(mailbox, callback, args, context);
    Py_DECREF(args);
    return handle;
}

static PyMethodDef uintr_threadsafe_def = {
    "call_soon_threadsafe",
    (PyCFunction)(void (*)(void))uintr_threadsafe_call,
    METH_FASTCALL | METH_KEYWORDS,
    "call_soon_threadsafe($self, callback, *args, context=None)\n--\n\n"
    "Like ``call_soon()``, but thread-safe.",
};

/* mailbox's call_soon_threadsafe: a new reference. */
static inline PyObject *uintr_threadsafe_bind(PyObject *mailbox)
{
    return PyCFunction_NewEx(&uintr_threadsafe_def, mailbox, NULL);
}

#endif
