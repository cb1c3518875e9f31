# Probes for the hardware path. Nothing here changes any state.


def cpuid_uintr():
    """CPUID.(EAX=7,ECX=0):EDX[5]: True/False, or None if leaf 7 is absent."""
    cdef unsigned edx = 0
    if uintr_cpuid_leaf7_edx(&edx) < 0:
        return None
    return bool((edx >> 5) & 1)


def raw_syscall2(long nr, long a0, long a1):
    """syscall(nr, a0, a1): the result, or -errno. For the ABI probe only."""
    return uintr_raw_syscall2(nr, a0, a1)


from uintr_hw cimport UINTR_NABIS, UINTR_NOPS, uintr_abi_t, uintr_abis, uintr_op_name


def abi_table():
    """The kernel ABI table (includes/uintr_hw.h, the one place it is
    written): ABI name -> {"numbers": {syscall: number}, and its facts}."""
    cdef int i, op
    cdef const uintr_abi_t *a
    out = {}
    for i in range(UINTR_NABIS):
        a = &uintr_abis[i]
        out[a.name.decode()] = {
            "numbers": {uintr_op_name(op).decode(): a.nr[op] for op in range(UINTR_NOPS)},
            "handler_flags": a.handler_flags,
            "unregister_sender_by_index": bool(a.unregister_sender_by_index),
            "wait_takes_usec": bool(a.wait_takes_usec),
            "uitt_per_thread": bool(a.uitt_per_thread),
            "kernel_wakes_blocked": bool(a.kernel_wakes_blocked),
            "no_hardware_errno": a.no_hardware_errno,
        }
    return out
