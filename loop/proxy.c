/*
 * loop/proxy.c: the PROXY header stage of an accepted stream transport
 * (coreio/proxy.h). It runs between the transport's start and the protocol's
 * connection_made (or, with TLS, the handshake), reading the header from the
 * socket and nothing after it: each read first peeks, then takes from the
 * socket only the bytes that belong to the header. A peek that does not
 * complete the header is taken whole (every byte of it is header), so the
 * socket never stays readable with bytes we are waiting behind, and the
 * stages after this one find the stream exactly where the header ends,
 * however the peer split or coalesced its writes.
 */
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "coreio/proxy.h"
#include "internal.h"

#define TIMEOUT_DEFAULT 5.0 /* seconds for the whole header */
#define INLINE_SIZE     232 /* most headers fit: v1 (107), v2 with an IPv6 pair and some TLVs */
#define LOG_PER_SECOND  10  /* refusals logged per loop per second; the rest are counted */

typedef struct cio__proxy {
    unsigned versions;
    double timeout;
    cio_handle_t timer;
    bool done;
    cio_proxy_header_t hdr; /* once done; its TLVs point into buf */
    uint8_t *buf;           /* the header's bytes taken so far: inline, or heap for a big v2 */
    size_t have, cap;
    uint8_t inline_buf[INLINE_SIZE];
} cio__proxy_t;

/* ---- options ------------------------------------------------------------------------ */

bool cio__proxy_opts_valid(const cio_proxy_opts_t *o)
{
    return !o || (o->versions && !(o->versions & ~(unsigned)CIO_PROXY_ANY) && o->timeout >= 0 &&
                  o->timeout < 1e9 && (o->trusted || !o->ntrusted));
}

int cio__proxy_opts_copy(cio_proxy_opts_t *dst, const cio_proxy_opts_t *src)
{
    cio_cidr_t *v = NULL;
    if (src && src->ntrusted) {
        if (!(v = malloc(src->ntrusted * sizeof(*v))))
            return -ENOMEM;
        memcpy(v, src->trusted, src->ntrusted * sizeof(*v));
    }
    free((void *)dst->trusted);
    *dst = src ? *src : (cio_proxy_opts_t){0};
    dst->trusted = v;
    return 0;
}

void cio__proxy_opts_clear(cio_proxy_opts_t *o)
{
    free((void *)o->trusted);
    *o = (cio_proxy_opts_t){0};
}

/* ---- logging refusals ------------------------------------------------------------------ */

bool cio__proxy_quiet_error(int err)
{
    return err <= CIO_EPROXY && err >= CIO_EPROXYTIMEOUT;
}

/* "HOST:PORT" of @p sa for a log line. */
static void address_text(const struct sockaddr *sa, socklen_t len, char *out, size_t size)
{
    char host[NI_MAXHOST], port[NI_MAXSERV];
    if (sa->sa_family == AF_UNIX)
        snprintf(out, size, "a Unix socket peer");
    else if (getnameinfo(sa, len, host, sizeof(host), port, sizeof(port),
                         NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        snprintf(out, size, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
    else
        snprintf(out, size, "an unknown peer");
}

/*
 * One line per refused connection or dropped datagram, but at most
 * LOG_PER_SECOND a second on a loop: a flood of bad peers must not turn into
 * a flood of log lines (the next line that gets through says how many were
 * left out). True if this one may be logged.
 */
static bool log_allowed(cio_loop_t *loop)
{
    double now = cio__now();
    if (now - loop->proxy_log_second >= 1.0) {
        loop->proxy_log_second = now;
        loop->proxy_log_count = 0;
    }
    if (loop->proxy_log_count++ >= LOG_PER_SECOND) {
        loop->proxy_log_dropped++;
        return false;
    }
    return true;
}

/* "@p what from PEER @p fate: why", PEER from @p sa (NULL: not known). */
static void log_refusal(cio_loop_t *loop, const char *what, const struct sockaddr *sa,
                        socklen_t len, const char *fate, int err)
{
    char who[NI_MAXHOST + NI_MAXSERV + 4] = "an unknown peer";
    if (sa)
        address_text(sa, len, who, sizeof(who));
    cio__log(CIO_LOG_WARNING, "%s from %s %s: %s%s", what, who, fate, cio_strerror(err),
             loop->proxy_log_dropped ? " (and earlier refusals not logged)" : "");
    loop->proxy_log_dropped = 0;
}

void cio__proxy_log_refusal(cio_loop_t *loop, int fd, int err)
{
    if (!log_allowed(loop))
        return;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    bool known = getpeername(fd, (struct sockaddr *)&ss, &len) == 0;
    log_refusal(loop, "connection", known ? (struct sockaddr *)&ss : NULL, len, "closed", err);
}

void cio__proxy_log_dropped(cio_loop_t *loop, const struct sockaddr *from, socklen_t len, int err)
{
    if (log_allowed(loop))
        log_refusal(loop, "datagram", from, len, "dropped", err);
}

/* ---- the stage ------------------------------------------------------------------------- */

int cio__proxy_attach(cio_transport_t *t, const cio_proxy_opts_t *o)
{
    cio__proxy_t *p = malloc(sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->versions = o->versions;
    p->timeout = o->timeout > 0 ? o->timeout : TIMEOUT_DEFAULT;
    p->timer = (cio_handle_t){0};
    p->done = false;
    p->buf = p->inline_buf;
    p->have = 0;
    p->cap = sizeof(p->inline_buf);
    t->proxy = p;
    t->proxy_pending = true;
    return 0;
}

void cio__proxy_free(cio_transport_t *t)
{
    cio__proxy_t *p = t->proxy;
    cio_handle_cancel(p->timer);
    if (p->buf != p->inline_buf)
        free(p->buf);
    free(p);
    t->proxy = NULL;
}

/* The connection ends here: logged (rate-limited), closed, the protocol told; once. */
static void refuse(cio_transport_t *t, int err)
{
    cio_handle_cancel(t->proxy->timer);
    t->proxy->timer = (cio_handle_t){0};
    if (t->closing)
        return;
    cio__proxy_log_refusal(t->loop, t->fd, err);
    cio__transport_fatal(t, err, "PROXY protocol header refused", false);
}

static int expired(void *arg)
{
    cio_transport_t *t = arg;
    t->proxy->timer = (cio_handle_t){0};
    refuse(t, CIO_EPROXYTIMEOUT);
    return 0;
}

void cio__proxy_begin(cio_transport_t *t)
{
    cio__proxy_t *p = t->proxy;
    assert(t->made && !p->done);
    int rc = cio__transport_read_start(t);
    if (rc == 0)
        rc = cio_loop_call_later(t->loop, p->timeout, expired, t, &p->timer);
    if (rc < 0)
        cio__transport_fatal(t, rc, "cannot start reading the PROXY header", false);
}

/* Room for @p want bytes of header in all; 0 or -ENOMEM. */
static int reserve(cio__proxy_t *p, size_t want)
{
    if (want <= p->cap)
        return 0;
    uint8_t *b = malloc(CIO_PROXY_V2_MAX);
    if (!b)
        return -ENOMEM;
    memcpy(b, p->buf, p->have);
    p->buf = b;
    p->cap = CIO_PROXY_V2_MAX;
    return 0;
}

/* The header is in: the next stage starts (the TLS handshake, or the protocol). */
static void header_done(cio_transport_t *t)
{
    cio__proxy_t *p = t->proxy;
    cio_handle_cancel(p->timer);
    p->timer = (cio_handle_t){0};
    p->done = true;
    t->proxy_pending = false;
    if (t->tls)
        cio__tls_begin(t);
    else
        cio__transport_made(t);
}

/*
 * How much more to peek after the @p have bytes taken. Peeking past the
 * header's end is harmless (only the header is taken), so the first peek is
 * wide enough for most headers at once; then the rest of a v1 line, or
 * exactly the rest of a v2 header (its length is in bytes 14..15).
 */
static size_t header_room(const cio__proxy_t *p)
{
    if (p->have < 16) /* the version is not known: as much as the inline buffer holds */
        return INLINE_SIZE - p->have;
    if (p->buf[0] == 'P')
        return p->have < CIO_PROXY_V1_MAX ? CIO_PROXY_V1_MAX - p->have : 1;
    return 16 + ((size_t)p->buf[14] << 8 | p->buf[15]) - p->have;
}

/* Take @p n bytes (peeked, so they are there) from the socket into the header. */
static int take(cio_transport_t *t, size_t n)
{
    cio__proxy_t *p = t->proxy;
    ssize_t got = recv(t->fd, p->buf + p->have, n, 0);
    if (got < 0)
        return -errno;
    assert((size_t)got == n); /* a peeked stream's bytes stay until taken */
    p->have += n;
    cio__transport_traffic(t, n, 0);
    return 0;
}

/* One readable event: peek, parse what we have, take the header's bytes. */
static int read_some(cio_transport_t *t)
{
    cio__proxy_t *p = t->proxy;
    size_t room = header_room(p);
    int rc = reserve(p, p->have + room);
    if (rc < 0)
        return rc;
    ssize_t n = recv(t->fd, p->buf + p->have, room, MSG_PEEK);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    if (n == 0)
        return p->have ? CIO_EPROXY : CIO_EPROXYMISSING;
    ssize_t len = cio_proxy_parse(p->buf, p->have + (size_t)n, p->versions, &p->hdr);
    if (len < 0)
        return (int)len;
    if (len == 0) /* all of it belongs to the header: take it, wait for the rest */
        return take(t, (size_t)n);
    bool more = p->have + (size_t)n > (size_t)len; /* the peer's first bytes are there too */
    /* The take lands where the peek did, so the header's TLVs already point into buf. */
    if ((rc = take(t, (size_t)len - p->have)) < 0)
        return rc;
    header_done(t);
    /* Read them now rather than after another poll (TLS reads on by itself). */
    if (more && !t->tls && cio_transport_is_reading(t))
        cio__stream_on_readable(t);
    return 0;
}

int cio__proxy_on_readable(cio_transport_t *t)
{
    int rc = read_some(t);
    if (rc == -ECONNRESET && t->proxy->have == 0) /* gone before a byte: nothing to refuse */
        cio__transport_fatal(t, rc, "connection reset before its PROXY header", false);
    else if (rc < 0)
        refuse(t, rc);
    return 0;
}

/* ---- what the transport tells --------------------------------------------------------- */

/* The header's address for @p name ("peername": the source), if it carries one. */
static bool header_address(const cio__proxy_t *p, const char *name, cio_extra_info_t *info)
{
    bool src = strcmp(name, "peername") == 0;
    socklen_t len = src ? p->hdr.src_len : p->hdr.dst_len;
    if (!p->done || p->hdr.local || len == 0)
        return false;
    memcpy(&info->addr, src ? &p->hdr.src : &p->hdr.dst, len);
    info->addrlen = len;
    return true;
}

int cio__proxy_extra_info(const cio_transport_t *t, const char *name, cio_extra_info_t *info)
{
    const cio__proxy_t *p = t->proxy;
    if (strcmp(name, "proxy") == 0) {
        if (!p->done)
            return -ENOENT;
        info->object = (void *)&p->hdr;
        info->addrlen = 0;
        return 0;
    }
    if ((strcmp(name, "peername") == 0 || strcmp(name, "sockname") == 0) &&
        header_address(p, name, info))
        return 0;
    return 1; /* the socket's own */
}
