/* fmt.c - see fmt.h. */
#include "fmt.h"

struct out {
    char *buf;
    size_t size, len;
};

static void put(struct out *o, char c)
{
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

static void put_num(struct out *o, unsigned long long v, unsigned base, int neg, int width, char pad)
{
    char tmp[24];
    int n = 0;
    do {
        unsigned d = (unsigned)(v % base);
        tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v != 0);
    if (neg)
        tmp[n++] = '-';
    while (width-- > n)
        put(o, pad);
    while (n > 0)
        put(o, tmp[--n]);
}

int fmt_v(char *buf, size_t size, const char *f, va_list ap)
{
    struct out o = {buf, size, 0};
    for (; *f; f++) {
        int longs = 0, width = 0;
        char pad = ' ';
        if (*f != '%') {
            put(&o, *f);
            continue;
        }
        f++;
        if (*f == '0')
            pad = '0';
        while (*f >= '0' && *f <= '9')
            width = width * 10 + (*f++ - '0');
        while (*f == 'l') {
            longs++;
            f++;
        }
        switch (*f) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            int n = 0;
            if (s == NULL)
                s = "(null)";
            for (const char *p = s; *p; p++)
                n++;
            while (width-- > n)
                put(&o, ' ');
            while (*s)
                put(&o, *s++);
            break;
        }
        case 'c':
            put(&o, (char)va_arg(ap, int));
            break;
        case 'd': {
            long long v = longs ? va_arg(ap, long long) : va_arg(ap, int);
            put_num(&o, v < 0 ? -(unsigned long long)v : (unsigned long long)v, 10, v < 0, width, pad);
            break;
        }
        case 'u':
        case 'x': {
            unsigned long long v = longs ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned);
            put_num(&o, v, *f == 'x' ? 16 : 10, 0, width, pad);
            break;
        }
        case 'p':
            put(&o, '0');
            put(&o, 'x');
            put_num(&o, (unsigned long long)va_arg(ap, void *), 16, 0, width, pad);
            break;
        case '%':
            put(&o, '%');
            break;
        default:
            put(&o, '%');
            if (*f)
                put(&o, *f);
            else
                f--;
        }
    }
    if (o.size > 0)
        o.buf[o.len < o.size ? o.len : o.size - 1] = '\0';
    return (int)o.len;
}

int fmt(char *buf, size_t size, const char *f, ...)
{
    va_list ap;
    int n;
    va_start(ap, f);
    n = fmt_v(buf, size, f, ap);
    va_end(ap);
    return n;
}
