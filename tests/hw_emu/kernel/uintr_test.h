/* Shared between the selftest (uintr_selftest.c) and its handler (handler.c). */
#ifndef UINTR_TEST_H
#define UINTR_TEST_H

#include <x86gprintrin.h>

#define RECEIVERS 8
#define LOG_SIZE 256

struct delivery_log {
    unsigned count;                 /* handler entries */
    unsigned char vector[LOG_SIZE]; /* their vectors, in order */
};

extern __thread int uintr_test_receiver_id;
extern struct delivery_log uintr_test_log[RECEIVERS];

void __attribute__((interrupt))
uintr_test_handler(struct __uintr_frame *frame, unsigned long long vector);

#endif
