/*
 * mainstate.c - points the interpreter's "main thread state" at the thread
 * that is the main thread after a fork (mainstate.h).
 *
 * Since 3.13 CPython sends every signal to one thread state: the C handler
 * sets the "signals pending" bit in the eval breaker of _PyRuntime.main_tstate,
 * and only that thread state's next check runs the Python handlers. The field
 * is set once, at start-up. A fork from another thread makes the forking
 * thread the child's main thread (_PyRuntime.main_thread is updated, so
 * signal.signal() works there), but main_tstate still names the parent's main
 * thread, whose state the child has freed: the child's signals set a bit in
 * freed memory, and its Python signal handlers run only when something calls
 * PyErr_CheckSignals() by hand. A deadline, whose doorbell is a signal
 * handler, then never fires in a busy child.
 *
 * The repair runs in the child right after the fork (os.register_at_fork),
 * with the GIL, while the child has one thread: nothing reads the field at
 * that instant. It changes the field only when the calling thread is the
 * main thread by CPython's own record and main_tstate is not its state, then
 * sets the pending bit on the new state, so that a signal that arrived in
 * between is handled at the next check (the bit is only a request to look:
 * with nothing tripped the check finds nothing). Like gilword.c, this file
 * alone is compiled as a core module, against the layout of the Python the
 * extension is built for.
 */
#define Py_BUILD_CORE_MODULE 1
#include <Python.h>

#if PY_VERSION_HEX >= 0x030D0000
#include "internal/pycore_runtime.h"
#include "internal/pycore_ceval.h"
#endif

#include "mainstate.h"

int uintr_main_tstate_repair(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyThreadState *self = PyThreadState_Get();
    if (_PyRuntime.main_tstate == self || _PyRuntime.main_thread != PyThread_get_thread_ident()
            || self->interp != PyInterpreterState_Main())
        return 0;
    _PyRuntime.main_tstate = self;
    _Py_set_eval_breaker_bit(self, _PY_SIGNALS_PENDING_BIT);
    return 1;
#else
    return 0;                   /* signals go to whichever thread is main */
#endif
}
