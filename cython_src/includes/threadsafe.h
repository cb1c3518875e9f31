/*
 * threadsafe.h - call_soon_threadsafe(callback, *args, context=None) as a C
 * function bound to a mailbox (mailbox.pxi): what a loop of the uvloop base
 * has as its call_soon_threadsafe.
 *
 * Why: a Cython method with *args and a keyword argument takes its
 * arguments through a general parser, a fifth of a post's cost in a flood.
 * Here they come as the vectorcall's array: the callback is the first item,
 * the rest are the arguments' tuple, and the one keyword is looked for in
 * the names only when there are any. The mailbox's post (a cdef function,
 * given at binding) does the rest.
 */
#ifndef UINTR_LOOP_THREADSAFE_H
#define UINTR_LOOP_THREADSAFE_H

#include <Python.h>

/* Mailbox.post: a new reference to the handle, or NULL with an exception. */
typedef PyObject *(*uintr_post_fn)(PyObject *mailbox, PyObject *callback, PyObject *args,
                                   PyObject *context);

static uintr_post_fn uintr_threadsafe_post;

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
    handle = uintr_threadsafe_post(mailbox, callback, args, context);
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

/* mailbox's call_soon_threadsafe, posting through post: a new reference. */
static inline PyObject *uintr_threadsafe_bind(PyObject *mailbox, uintr_post_fn post)
{
    uintr_threadsafe_post = post;
    return PyCFunction_NewEx(&uintr_threadsafe_def, mailbox, NULL);
}

#endif
