/*
 * callargs.h - call a callback with the arguments a handle keeps as a tuple
 * (mailbox.pxi), through vectorcall: the tuple's items are the argument
 * array, so nothing is unpacked or built, as Python's own call of f(*args)
 * with a tuple does.
 */
#ifndef UINTR_LOOP_CALLARGS_H
#define UINTR_LOOP_CALLARGS_H

#include <Python.h>

/* New reference to callback(*args), or NULL with an exception. */
static inline PyObject *uintr_call_args(PyObject *callback, PyObject *args)
{
    return PyObject_Vectorcall(callback, &PyTuple_GET_ITEM(args, 0),
                               (size_t)PyTuple_GET_SIZE(args), NULL);
}

#endif
