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
 * What: the type's allocation and free slots go through a pool of handles'
 * memory. Its first UINTR_HANDLE_FREELIST entries are the type's freelist,
 * kept for good (the post and the drain use them for every small batch).
 * The rest, up to UINTR_HANDLE_POOL in all, are the overflow a flood's
 * batch leaves: taken in by the drain of a batch larger than the freelist,
 * given back at the first drain of one that is not (uintr_handle_pool_trim)
 * or when a loop closes. A handle freed goes to the pool while there is room; one
 * allocated comes from it while it is not empty.
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
#include "tshandle.h"

/* a handle's size, known to the compiler: it zeroes one in a few stores */
#define UINTR_HANDLE_SIZE ((Py_ssize_t)sizeof(uintr_tshandle_t))

#define UINTR_HANDLE_FREELIST 8192
#define UINTR_HANDLE_POOL (UINTR_HANDLE_FREELIST + 57344)

#ifndef Py_GIL_DISABLED
static PyTypeObject *uintr_pool_type;
static void *uintr_pool[UINTR_HANDLE_POOL];
static Py_ssize_t uintr_pool_n;
static unsigned long uintr_pool_made;       /* handles allocated since the last trim check */
static Py_ssize_t uintr_pool_cap = UINTR_HANDLE_FREELIST;   /* the overflow's room, if kept */

static PyObject *uintr_pool_alloc(PyTypeObject *tp, Py_ssize_t nitems)
{
    PyObject *op;
    if (tp != uintr_pool_type || nitems != 0)
        return PyType_GenericAlloc(tp, nitems);
    uintr_pool_made++;
    if (uintr_pool_n != 0) {
        op = (PyObject *)uintr_pool[--uintr_pool_n];
    } else {
        /* what PyType_GenericAlloc does for a type without the collector
         * or items, less its general case: a flood's batch is mostly these */
        op = (PyObject *)PyObject_Malloc(UINTR_HANDLE_SIZE);
        if (op == NULL)
            return PyErr_NoMemory();
    }
    memset(op, 0, UINTR_HANDLE_SIZE);
    return PyObject_Init(op, tp);
}

static void uintr_pool_free(void *op)
{
    if (Py_TYPE((PyObject *)op) == uintr_pool_type && uintr_pool_n < uintr_pool_cap)
        uintr_pool[uintr_pool_n++] = op;
    else
        PyObject_Free(op);
}
#endif

/* Route tp's (a non-GC type of UINTR_HANDLE_SIZE bytes) allocation
 * through the pool; a type of any other size keeps its slots. */
static inline void uintr_handle_pool_install(PyTypeObject *tp)
{
#ifndef Py_GIL_DISABLED
    if (tp->tp_basicsize != UINTR_HANDLE_SIZE || tp->tp_itemsize != 0 || PyType_IS_GC(tp))
        return;
    uintr_pool_type = tp;
    tp->tp_alloc = uintr_pool_alloc;
    tp->tp_free = uintr_pool_free;
#else
    (void)tp;
#endif
}

/* Give the overflow's memory back, and take no more into it, unless the
 * batch since the last call (the handles allocated) was larger than the
 * freelist (always, with force): then the overflow keeps what its drain
 * frees. Returns the number of handles' memory freed. */
static inline Py_ssize_t uintr_handle_pool_trim(int force)
{
#ifndef Py_GIL_DISABLED
    Py_ssize_t n = uintr_pool_n;
    int keep = uintr_pool_made > UINTR_HANDLE_FREELIST && !force;
    uintr_pool_made = 0;
    uintr_pool_cap = keep ? UINTR_HANDLE_POOL : UINTR_HANDLE_FREELIST;
    if (keep || n <= UINTR_HANDLE_FREELIST)
        return 0;
    while (uintr_pool_n > UINTR_HANDLE_FREELIST)
        PyObject_Free(uintr_pool[--uintr_pool_n]);
    return n - uintr_pool_n;
#else
    (void)force;
    return 0;
#endif
}

/* Handles' memory the overflow holds now, beyond the freelist (tests). */
static inline Py_ssize_t uintr_handle_pool_size(void)
{
#ifndef Py_GIL_DISABLED
    return uintr_pool_n > UINTR_HANDLE_FREELIST ? uintr_pool_n - UINTR_HANDLE_FREELIST : 0;
#else
    return 0;
#endif
}

#endif
