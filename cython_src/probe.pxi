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
