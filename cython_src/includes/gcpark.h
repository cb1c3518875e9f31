/*
 * gcpark.h - keep the mailbox's list out of the cycle collector's sight
 * (mailbox.pxi).
 *
 * Why: in a flood of call_soon_threadsafe, thousands of handles wait in the
 * mailbox's list at once. A tracked list is walked by every collection that
 * finds it alive, and with it every handle in it: work that grows with the
 * flood and finds nothing.
 *
 * Why it is safe: the list holds only handles, which the collector does not
 * track (ThreadsafeHandle is no_gc: a cycle through one could not be found
 * anyway), so walking the list can never change what the collector frees.
 * The list is parked for good when the mailbox makes it.
 *
 * Only where the GIL serialises the tracking bit with the collector: on a
 * free-threaded build the bit shares a word with others that other threads
 * change, so the call does nothing there.
 */
#ifndef UINTR_LOOP_GCPARK_H
#define UINTR_LOOP_GCPARK_H

#include <Python.h>

/* 1 if obj was tracked and now is not. */
static inline int uintr_gc_park(PyObject *obj)
{
#ifdef Py_GIL_DISABLED
    (void)obj;
    return 0;
#else
    if (!PyObject_GC_IsTracked(obj))
        return 0;
    PyObject_GC_UnTrack(obj);
    return 1;
#endif
}

#endif
