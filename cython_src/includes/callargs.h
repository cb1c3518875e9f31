/*
 * callargs.h - call a callback with the arguments a handle keeps as a tuple
 * (mailbox.pxi), through vectorcall: the tuple's items are the argument
 * array, so nothing is unpacked or built, as Python's own call of f(*args)
 * with a tuple does.
 *
 * The drain calls one callback after another in a context, and an error is
 * the rare case: a try block around each call in Cython saves and restores
 * the thread's handled exception every time. So the call, its context and
 * its error are plain C here (tshandle.h), and the drain looks at the error
 * only when there is one.
 */
#ifndef UINTR_LOOP_CALLARGS_H
#define UINTR_LOOP_CALLARGS_H

#include <Python.h>
#include "ctxsnap.h"

/* New reference to callback(*args), or NULL with an exception. */
static inline PyObject *uintr_call_args(PyObject *callback, PyObject *args)
{
    return PyObject_Vectorcall(callback, &PyTuple_GET_ITEM(args, 0),
                               (size_t)PyTuple_GET_SIZE(args), NULL);
}

/* callback(*args) run in the context ctx, entered and left around it: with
 * vars not NULL, ctx is the drain's own box, loaded with the snapshot vars
 * (ctxsnap.h). 0, or -1 with the exception set (the callback's, kept across
 * the exit). */
static inline int uintr_call_in_context(PyObject *ctx, PyObject *vars, PyObject *callback,
                                        PyObject *args)
{
    PyObject *result, *value;
#if PY_VERSION_HEX < 0x030C0000
    PyObject *type, *tb;
#endif
    if ((vars != NULL ? uintr_ctx_enter(ctx, vars) : PyContext_Enter(ctx)) < 0)
        return -1;
    result = uintr_call_args(callback, args);
    if (result != NULL) {
        Py_DECREF(result);
        return vars != NULL ? uintr_ctx_exit(ctx) : PyContext_Exit(ctx);
    }
#if PY_VERSION_HEX >= 0x030C0000
    value = PyErr_GetRaisedException();
    if ((vars != NULL ? uintr_ctx_exit(ctx) : PyContext_Exit(ctx)) < 0) {
        Py_XDECREF(value);          /* the exit's own error is the one set */
        return -1;
    }
    PyErr_SetRaisedException(value);
#else
    PyErr_Fetch(&type, &value, &tb);
    if ((vars != NULL ? uintr_ctx_exit(ctx) : PyContext_Exit(ctx)) < 0) {
        Py_XDECREF(type);           /* the exit's own error is the one set */
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return -1;
    }
    PyErr_Restore(type, value, tb);
#endif
    return -1;
}

/* The exception set now, taken (cleared) and normalized, with its traceback
 * attached: a new reference. Only with an exception set. */
static inline PyObject *uintr_take_error(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(value, tb);
        Py_DECREF(tb);
    }
    Py_XDECREF(type);
    return value;
#endif
}

#endif
