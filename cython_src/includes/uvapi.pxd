cdef extern from "uvapi.h" nogil:
    const int UINTR_UV_CHECK
    const int UINTR_UV_IDLE
    const int UINTR_UV_POLL
    const int UINTR_UV_PREPARE
    const int UINTR_UV_READABLE

    ctypedef void (*uintr_uv_cb)(void *handle) noexcept nogil
    ctypedef void (*uintr_uv_poll_cb)(void *handle, int status, int events) noexcept nogil

    ctypedef struct uintr_uv_api_t:
        unsigned int (*version)() noexcept nogil
        size_t (*handle_size)(int type) noexcept nogil
        int (*prepare_init)(void *loop, void *h) noexcept nogil
        int (*prepare_start)(void *h, uintr_uv_cb cb) noexcept nogil
        int (*check_init)(void *loop, void *h) noexcept nogil
        int (*check_start)(void *h, uintr_uv_cb cb) noexcept nogil
        int (*idle_init)(void *loop, void *h) noexcept nogil
        int (*idle_start)(void *h, uintr_uv_cb cb) noexcept nogil
        int (*idle_stop)(void *h) noexcept nogil
        int (*poll_init)(void *loop, void *h, int fd) noexcept nogil
        int (*poll_start)(void *h, int events, uintr_uv_poll_cb cb) noexcept nogil
        void (*close)(void *h, uintr_uv_cb close_cb) noexcept nogil
        void (*unref)(void *h) noexcept nogil
        int (*backend_timeout)(const void *loop) noexcept nogil
        int (*backend_fd)(const void *loop) noexcept nogil
        void (*stop)(void *loop) noexcept nogil

    int uintr_uv_api_load(uintr_uv_api_t *api, const char *path, char *err, size_t errlen)
    void *uintr_uv_find_loop(const uintr_uv_api_t *api, void *obj, size_t header_size)
