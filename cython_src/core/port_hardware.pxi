# The Port's side of the hardware backend (mode="hardware"). The backend
# itself is another extension (uintr_loop._hardware, built only where the
# compiler takes -muintr; see hardware.pxi and hw/uintr_hw.c). The core
# never links against it: it gets a HardwareReceiver object from
# uintr_loop._backend, and the address of its nogil send function.
#
# What changes in hardware mode:
#   - Receiver vectors travel as user interrupts: each (receiver, vector)
#     handed out gets one of the loop thread's hardware vectors, a Sender
#     registers with its vector fd and send() is SENDUIPI;
#   - the handler records them; the Port turns recorded hardware vectors
#     into the Receivers' UIRR after every select, as it does for posts;
#   - call_soon_threadsafe (vector 0 of the loop's UPID) stays in software:
#     any thread can post it without registering with the kernel first;
#   - a select may sleep at most HW_MAX_SLEEP (see uintr_hw.c: an interrupt
#     that reaches the CPU while the loop enters the kernel waits for the
#     next return to user space, which this cap bounds).
from libc.stdint cimport uintptr_t

HW_MAX_SLEEP = 0.010


cdef int port_open_hardware(Port port, hardware) except -1:
    # `hardware(wake_fd)` builds the receiver: the handler's eventfd writes
    # and the RFC's sender-paid wakes both land on the loop's channel.
    port.hw = hardware(port.channel.fd)
    port.max_sleep = HW_MAX_SLEEP
    return 0


cdef bint port_restore_hardware(Port port) except -1:
    return port.hw.before_block()


cdef int port_recognise_hardware(Port port) except -1:
    cdef Receiver receiver
    for slot, vector in port.hw.take():
        receiver = port.receivers.get(slot)
        if receiver is not None and not receiver.closed:
            receiver.uirr |= (<uint64_t>1) << <unsigned>vector
            receiver.schedule_delivery()
    return 0


cdef int port_hardware_vector(Receiver receiver, unsigned vector) except -1:
    # uintr_vector_fd belongs to the calling thread's UPID: the loop's thread
    # (the first call may register the handler for it).
    receiver.check_thread("vector_fd")
    receiver.port.hw.vector_for(receiver.slot, vector)
    return 0


cdef int sender_attach_hardware(Sender sender) except -1:
    hs = sender.receiver.port.hw.sender(sender.receiver.slot, sender.c.vector)
    sender.hw_sender = hs
    sender.c.hw_ctx = <void *><uintptr_t>hs.c_context_address()
    sender.c.hw_send = <int (*)(void *) noexcept nogil><uintptr_t>hs.c_send_address()
    return 0
