/*
 * gilword.c - where the interpreter keeps "the GIL is held" (gilword.h).
 *
 * The word is private to CPython, so this file, and only this file, is
 * compiled as a core module: it sees the interpreter's internal structs,
 * laid out as the Python it is built for lays them out (an extension is
 * built per Python version, so the layout cannot drift under it). It
 * exports the one address and nothing else; the loop only ever loads from
 * it. Where the build has no GIL there is no word: NULL.
 */
#define Py_BUILD_CORE_MODULE 1
#include <Python.h>

#if defined(Py_GIL_DISABLED)
                                       /* no GIL: nothing to include */
#elif PY_VERSION_HEX < 0x030C0000
#include "internal/pycore_runtime.h"   /* one GIL, in _PyRuntime */
#else
#include "internal/pycore_interp.h"    /* a GIL per interpreter */
#endif

#include "gilword.h"

const int *uintr_gil_word(void)
{
#if defined(Py_GIL_DISABLED)
    return NULL;
#elif PY_VERSION_HEX < 0x030C0000
    return (const int *)&_PyRuntime.ceval.gil.locked._value;
#elif PY_VERSION_HEX < 0x030D0000
    return (const int *)&PyInterpreterState_Get()->ceval.gil->locked._value;
#else
    return &PyInterpreterState_Get()->ceval.gil->locked;
#endif
}
