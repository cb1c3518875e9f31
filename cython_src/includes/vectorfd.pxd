from libc.stdint cimport uint16_t, uint32_t, uint64_t


cdef extern from "vectorfd.h" nogil:
    ctypedef struct uintr_vfd_header_t:
        uint32_t magic
        uint16_t version
        uint16_t size
        uint32_t index
        uint32_t vector
        uint64_t table_size
        uint64_t owner_start

    ctypedef struct uintr_vfd_opened_t:
        uintr_vfd_header_t hdr
        int table_fd
        int event_fd
        int pidfd
        int keep_fd
        int reg_fd
        int owner_pid

    ctypedef struct uintr_peer_set_t:
        size_t n

    int uintr_vfd_create(int table_fd, int event_fd, int reg_fd, uint32_t index,
                         uint32_t vector, uint64_t table_size, int *peer_out)
    int uintr_reg_open(int fds[2])
    int uintr_reg_take(int fd, int *pidfd_out, int *pid_out)
    int uintr_vfd_open(int fd, uint64_t table_size, uintr_vfd_opened_t *out)
    int uintr_peers_add(uintr_peer_set_t *s, uint32_t slot, int fd)
    int uintr_peers_hold(uintr_peer_set_t *s, uint32_t slot)
    void uintr_peers_close(uintr_peer_set_t *s)
