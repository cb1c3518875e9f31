/*
 * gcpark.h - keep a pending callback's context out of the cycle collector's
 * sight while it waits in the mailbox (mailbox.pxi).
 *
 * Why: call_soon_threadsafe without a context snapshots the caller's (one
 * new Context per post, as asyncio's Handle does). The Context is a tracked
 * object, and in a flood thousands of them wait in the mailbox at once, so
 * every young collection finds them alive, walks them and promotes them, and
 * the older generations then walk them again: a third of a flood's CPU time
 * here went to that.
 *
 * Why it is safe: while a context is parked, the mailbox's list holds its
 * handle and the handle holds it, so the collector could not free it, or
 * anything it reaches, whatever it found: walking it can only conclude
 * "alive". Untracking changes what the collector visits, never what it
 * frees. The context is tracked again (unparked) before any code can run in
 * it or see it change hands: when its handle is taken to run, cancelled, or
 * freed. A handle's get_context() may give it to user code while parked;
 * that code cannot make it collectable either, for the handle still holds
 * it, and it is unparked with the handle at the latest.
 *
 * Only where the GIL serialises the tracking bit with the collector: on a
 * free-threaded build the bit shares a word with others that other threads
 * change, so both calls do nothing there.
 */
#ifndef UINTR_LOOP_GCPARK_H
#define UINTR_LOOP_GCPARK_H

#include <Python.h>

/* 1 if obj was parked (the caller remembers it, to unpark once). */
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

static inline void uintr_gc_unpark(PyObject *obj)
{
#ifndef Py_GIL_DISABLED
    if (!PyObject_GC_IsTracked(obj))
        PyObject_GC_Track(obj);
#else
    (void)obj;
#endif
}

#endif
