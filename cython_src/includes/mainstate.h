/*
 * mainstate.h - after a fork from a thread other than the main one, make the
 * interpreter deliver the child's signals to its (new) main thread;
 * mainstate.c says why CPython 3.13+ needs this.
 *
 * Call in the child after the fork, with the GIL. 1: the record named a
 * thread state the child does not have and now names the caller's; 0:
 * nothing to repair (or a Python that keeps no such record).
 */
#ifndef UINTR_LOOP_MAINSTATE_H
#define UINTR_LOOP_MAINSTATE_H

int uintr_main_tstate_repair(void);

#endif
