/*
 * uvapi.h - the few libuv calls the uvloop base needs, found at run time.
 *
 * uvloop links libuv statically into uvloop/loop*.so and exports its symbols,
 * but ships no headers and no C API for its loop. We therefore resolve the
 * functions with dlsym on that already-loaded object (RTLD_NOLOAD: we never
 * load a second libuv) and declare them with opaque handle pointers. This
 * relies only on libuv's stable 1.x ABI: the function signatures, the handle
 * type numbers, uv_handle_size(), and `void *data` being the first field of
 * every handle and of uv_loop_t.
 *
 * The uv_loop_t itself is a private field of uvloop's Loop object. uvloop
 * stores the Loop in uv_loop_t.data, so we recognise the right pointer
 * instead of trusting an offset: among the first pointer fields of the object
 * (the vtable pointer Cython puts first, then `uvloop`), the uv_loop_t is the
 * one whose data field points back at the object, and whose backend fd is an
 * epoll fd. Anything else is refused (the caller then says this uvloop is not
 * supported and names base="asyncio").
 */
#ifndef UINTR_LOOP_UVAPI_H
#define UINTR_LOOP_UVAPI_H

#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fdkind.h"

/* uv_handle_type values (UV_HANDLE_TYPE_MAP order, fixed since libuv 1.0) */
enum { UINTR_UV_CHECK = 2, UINTR_UV_IDLE = 6, UINTR_UV_POLL = 8, UINTR_UV_PREPARE = 9 };
enum { UINTR_UV_READABLE = 1 };

typedef void (*uintr_uv_cb)(void *handle);
typedef void (*uintr_uv_poll_cb)(void *handle, int status, int events);

typedef struct {
    unsigned int (*version)(void);
    size_t (*handle_size)(int type);
    int (*prepare_init)(void *loop, void *h);
    int (*prepare_start)(void *h, uintr_uv_cb cb);
    int (*check_init)(void *loop, void *h);
    int (*check_start)(void *h, uintr_uv_cb cb);
    int (*idle_init)(void *loop, void *h);
    int (*idle_start)(void *h, uintr_uv_cb cb);
    int (*idle_stop)(void *h);
    int (*poll_init)(void *loop, void *h, int fd);
    int (*poll_start)(void *h, int events, uintr_uv_poll_cb cb);
    void (*close)(void *h, uintr_uv_cb close_cb);
    void (*unref)(void *h);
    int (*backend_timeout)(const void *loop);
    int (*backend_fd)(const void *loop);
    void (*stop)(void *loop);
} uintr_uv_api_t;

/* Resolve the API from the shared object at `path` (already loaded).
 * Returns 0, or -1 with a message in err. */
static inline int uintr_uv_api_load(uintr_uv_api_t *api, const char *path,
                                    char *err, size_t errlen)
{
    void *so = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (so == NULL) {
        snprintf(err, errlen, "cannot find the loaded uvloop module (%s)", dlerror());
        return -1;
    }
#define UINTR_UV_SYM(field, name)                                            \
    do {                                                                     \
        *(void **)&api->field = dlsym(so, name);                             \
        if (api->field == NULL) {                                            \
            snprintf(err, errlen, "uvloop exports no %s", name);             \
            dlclose(so);                                                     \
            return -1;                                                       \
        }                                                                    \
    } while (0)
    UINTR_UV_SYM(version, "uv_version");
    UINTR_UV_SYM(handle_size, "uv_handle_size");
    UINTR_UV_SYM(prepare_init, "uv_prepare_init");
    UINTR_UV_SYM(prepare_start, "uv_prepare_start");
    UINTR_UV_SYM(check_init, "uv_check_init");
    UINTR_UV_SYM(check_start, "uv_check_start");
    UINTR_UV_SYM(idle_init, "uv_idle_init");
    UINTR_UV_SYM(idle_start, "uv_idle_start");
    UINTR_UV_SYM(idle_stop, "uv_idle_stop");
    UINTR_UV_SYM(poll_init, "uv_poll_init");
    UINTR_UV_SYM(poll_start, "uv_poll_start");
    UINTR_UV_SYM(close, "uv_close");
    UINTR_UV_SYM(unref, "uv_unref");
    UINTR_UV_SYM(backend_timeout, "uv_backend_timeout");
    UINTR_UV_SYM(backend_fd, "uv_backend_fd");
    UINTR_UV_SYM(stop, "uv_stop");
#undef UINTR_UV_SYM
    /* The module stays loaded for as long as uvloop is imported; dropping
     * our extra reference keeps the count as it was. */
    dlclose(so);
    if ((api->version() >> 16) != 1) {
        snprintf(err, errlen, "uvloop carries libuv %u.x; only 1.x is supported",
                 api->version() >> 16);
        return -1;
    }
    return 0;
}

static inline int uintr_fd_is_epoll(int fd)
{
    return uintr_fd_is_kind(fd, "anon_inode:[eventpoll]", 0);
}

/* The uv_loop_t of uvloop Loop `obj` (a PyObject*), or NULL. Only the first
 * two pointer slots after the object header are read: in every uvloop
 * release they hold Cython's vtable pointer and the uv_loop_t pointer, both
 * valid pointers, so dereferencing either is safe. */
static inline void *uintr_uv_find_loop(const uintr_uv_api_t *api, void *obj,
                                       size_t header_size)
{
    size_t k;
    for (k = 0; k < 2; k++) {
        void *p = *(void **)((char *)obj + header_size + k * sizeof(void *));
        if (p == NULL || ((uintptr_t)p & (sizeof(void *) - 1)) != 0)
            continue;
        if (*(void **)p != obj)      /* uv_loop_t.data == the Loop */
            continue;
        if (!uintr_fd_is_epoll(api->backend_fd(p)))
            continue;
        return p;
    }
    return NULL;
}

#endif
