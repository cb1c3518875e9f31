/*
 * handlepool.h - where a flood's threadsafe handles live between batches
 * (mailbox.pxi).
 *
 * Why: under one GIL a flood of call_soon_threadsafe comes in batches of a
 * GIL turn (5 ms: tens of thousands of handles), made by the poster and
 * freed by the drain. Beyond the type's freelist (8192) every handle went to
 * the allocator and back, and a drained batch emptied whole arenas, which
 * the allocator gives back to the kernel: the next batch faulted the same
 * memory in again, zeroed. That was a fifth of a flood's cost per callback.
 *
 * What: the type's allocation and free slots go through an overflow pool of
 * UINTR_HANDLE_POOL more handles' memory. A handle freed while the freelist
 * is full goes here; one allocated while the freelist is empty comes from
 * here. The pool holds memory only after a batch larger than the freelist,
 * and gives it all back at the first drain that follows a batch which did
 * not need it (uintr_handle_pool_trim), or when a loop closes.
 *
 * Why it is safe: every call runs with the GIL held (the allocation and free
 * slots are only ever called with it), and the pool serves only its own
 * type, checked by size and type on both sides. On a free-threaded build,
 * where handles are freed on any thread with no lock between them, nothing
 * is installed and the type keeps its slots.
 */
#ifndef UINTR_LOOP_HANDLEPOOL_H
#define UINTR_LOOP_HANDLEPOOL_H

#include <Python.h>
#include <string.h>

#define UINTR_HANDLE_POOL 57344

#ifndef Py_GIL_DISABLED
static PyTypeObject *uintr_pool_type;
static void *uintr_pool[UINTR_HANDLE_POOL];
static Py_ssize_t uintr_pool_n;
static unsigned long uintr_pool_served;     /* allocations served since the last trim check */

static PyObject *uintr_pool_alloc(PyTypeObject *tp, Py_ssize_t nitems)
{
    PyObject *op;
    if (tp != uintr_pool_type || nitems != 0 || uintr_pool_n == 0)
        return PyType_GenericAlloc(tp, nitems);
    op = (PyObject *)uintr_pool[--uintr_pool_n];
    uintr_pool_served++;
    memset(op, 0, (size_t)tp->tp_basicsize);
    return PyObject_Init(op, tp);
}

static void uintr_pool_free(void *op)
{
    if (Py_TYPE((PyObject *)op) == uintr_pool_type && uintr_pool_n < UINTR_HANDLE_POOL)
        uintr_pool[uintr_pool_n++] = op;
    else
        PyObject_Free(op);
}
#endif

/* Route tp's (a non-GC type's) allocation through the pool. */
static inline void uintr_handle_pool_install(PyTypeObject *tp)
{
#ifndef Py_GIL_DISABLED
    uintr_pool_type = tp;
    tp->tp_alloc = uintr_pool_alloc;
    tp->tp_free = uintr_pool_free;
#else
    (void)tp;
#endif
}

/* Give the pool's memory back unless a batch since the last call drew on it
 * (always, with force). Returns the number of handles' memory freed. */
static inline Py_ssize_t uintr_handle_pool_trim(int force)
{
#ifndef Py_GIL_DISABLED
    Py_ssize_t n = uintr_pool_n;
    int keep = uintr_pool_served != 0 && !force;
    uintr_pool_served = 0;
    if (keep || n == 0)
        return 0;
    while (uintr_pool_n > 0)
        PyObject_Free(uintr_pool[--uintr_pool_n]);
    return n;
#else
    (void)force;
    return 0;
#endif
}

/* Handles' memory the pool holds now (tests). */
static inline Py_ssize_t uintr_handle_pool_size(void)
{
#ifndef Py_GIL_DISABLED
    return uintr_pool_n;
#else
    return 0;
#endif
}

#endif
