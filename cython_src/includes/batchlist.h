/*
 * batchlist.h - the mailbox's list, filled by posts, drained slot by slot
 * and used again (mailbox.pxi).
 *
 * Why: a flood's batch is tens of thousands of handles, and a list that
 * grows to that size afresh for every batch reallocates its storage some
 * twenty times, the last ones as fresh pages the kernel has to fault in.
 * The drain takes each slot's reference as it runs the handle (the list
 * then no longer keeps it alive) and, when every slot is taken, empties the
 * list without freeing its storage, so the next batch fills it in place.
 *
 * Why it is safe: the drain owns the list it takes (it swapped it out of
 * the mailbox, and nothing else holds it), a taken slot is NULL, which a
 * list's deallocation and slicing past it accept, and an empty list's
 * storage is a list's own business (appending reuses it).
 */
#ifndef UINTR_LOOP_BATCHLIST_H
#define UINTR_LOOP_BATCHLIST_H

#include <Python.h>

/* The item at i, its reference now the caller's; the slot is left NULL. */
static inline PyObject *uintr_list_take(PyObject *list, Py_ssize_t i)
{
    PyObject *item = PyList_GET_ITEM(list, i);
    PyList_SET_ITEM(list, i, NULL);
    return item;
}

/* Append item to list (a new reference to it): 1 if the list was empty, 0
 * if not, -1 with an exception. The caller holds the GIL, or on a
 * free-threaded build the one critical section every access to the list is
 * made under; there list.append itself fills the slot. */
static inline int uintr_list_push(PyObject *list, PyObject *item)
{
    Py_ssize_t n = PyList_GET_SIZE(list);
#ifndef Py_GIL_DISABLED
    PyListObject *l = (PyListObject *)list;
    if (n < l->allocated && n > (l->allocated >> 1)) {
        /* room, and not so much that the list would shrink: the slot is
         * ours to fill, as list.append's own fast path fills it */
        PyList_SET_ITEM(list, n, Py_NewRef(item));
        Py_SET_SIZE(list, n + 1);
        return 0;
    }
#endif
    return PyList_Append(list, item) < 0 ? -1 : n == 0;
}

/* Empty a list whose slots have all been taken, keeping its storage; 0 (and
 * nothing done) when that storage is over cap slots. */
static inline int uintr_list_reset(PyObject *list, Py_ssize_t cap)
{
    if (((PyListObject *)list)->allocated > cap)
        return 0;
    Py_SET_SIZE(list, 0);
    return 1;
}

#endif
