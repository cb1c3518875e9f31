/*
 * gilword.h - the word in which the interpreter says whether its GIL is
 * held (1) or free (0); gilword.c finds it.
 *
 * Call uintr_gil_word() with the GIL held, from the interpreter whose GIL
 * is meant; the address stays valid as long as that interpreter lives. NULL:
 * this Python has no GIL to watch (a free-threaded build). Read the word
 * with a relaxed atomic load and treat it as a hint: the loop uses it only
 * to decide whether to wait a little before it asks for the GIL, never for
 * whether it may run (take_gil decides that, as always).
 */
#ifndef UINTR_LOOP_GILWORD_H
#define UINTR_LOOP_GILWORD_H

const int *uintr_gil_word(void);

/* Is the GIL held right now, as far as the word says? */
static inline int uintr_gil_held(const int *word)
{
    return __atomic_load_n(word, __ATOMIC_RELAXED) > 0;
}

#endif
