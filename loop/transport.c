/*
 * loop/transport.c: what every transport shares, whatever it carries: its
 * life (connection_made first, reading only after it, connection_lost exactly
 * once and last, then the transport is freed), closing and aborting, the
 * fatal-error path, pausing reads, the write buffer and its water marks.
 * Streams (loop/stream.c) and datagrams (loop/datagram.c) add their reads and
 * writes.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define HIGH_WATER_DEFAULT (64 * 1024)

static const cio_protocol_ops_t *ops_of(const cio_transport_t *t)
{
    return t->protocol->ops;
}

/* ---- closing --------------------------------------------------------------- */

/* Close the socket and free the transport, without a word to the protocol. */
static void transport_free(cio_transport_t *t)
{
    assert(t->lost); /* never before connection_lost */
    if (t->freed)
        return;
    t->freed = true;
    if (t->lost_reserved)
        cio__slot_unreserve(t->loop, t->lost_slot);
    cio__io_stop(t->loop, t->fd, t, CIO__IO_READ);
    cio__io_stop(t->loop, t->fd, t, CIO__IO_WRITE);
    close(t->fd);
    cio_handle_cancel(t->idle_timer);
    if (t->server)
        cio__server_detach(t->server, t);
    cio__queue_remove(&t->link);
    t->loop->ntransports--;
    cio_future_unref(t->waiter);
    if (t->tls)
        cio__tls_free(t);
    if (t->proxy)
        cio__proxy_free(t);
    if (t->dproxy)
        cio__dgram_proxy_free(t);
    if (t->drained) {
        cio_future_cancel(t->drained, NULL);
        cio_future_unref(t->drained);
    }
    free(t->remote);
    free(t->stash);
    free(t->wbuf);
    t->wbuf = NULL;
    if (t->pins == 0)
        free(t);
}

/* Keep the transport's memory while a sendfile task still refers to it. */
void cio__transport_pin(cio_transport_t *t)
{
    t->pins++;
}

void cio__transport_unpin(cio_transport_t *t)
{
    assert(t->pins > 0);
    if (--t->pins == 0 && t->freed)
        free(t);
}

/* The last callback: tell the protocol, then close and free. */
static int call_connection_lost(void *arg)
{
    cio_transport_t *t = arg;
    assert(t->lost && !t->freed && !t->lost_reserved);
    if (ops_of(t)->connection_lost)
        ops_of(t)->connection_lost(t->protocol, t->lost_err);
    transport_free(t);
    return 0;
}

/*
 * The loop is closing with transports still open (in debug mode it says so,
 * as asyncio's ResourceWarning does). Each protocol still hears the end, with
 * the error it was to get or CIO_ECLOSED, so it can free itself: a transport
 * is never freed before its protocol's connection_lost.
 */
void cio__transports_destroy_all(cio_loop_t *loop)
{
    while (!cio__queue_empty(&loop->transports)) {
        cio_transport_t *t = cio_container_of(loop->transports.next, cio_transport_t, link);
        if (loop->debug && !t->lost)
            cio__log(CIO_LOG_WARNING, "unclosed transport %p (socket %d)", (void *)t, t->fd);
        if (!t->lost) {
            t->lost = true;
            t->lost_err = CIO_ECLOSED;
        }
        if (t->lost_reserved) /* the slot goes back: the loop runs nothing more */
            cio__slot_unreserve(loop, t->lost_slot);
        t->lost_reserved = false;
        call_connection_lost(t);
    }
}

/* Schedule connection_lost(@p err) once, in the slot reserved for it: this cannot fail. */
void cio__transport_schedule_lost(cio_transport_t *t, int err)
{
    if (t->lost)
        return;
    assert(t->lost_reserved); /* the slot is still the transport's */
    t->lost = true;
    t->lost_err = err;
    cio__slot_t proto = {.fn.cb = call_connection_lost, .arg = t, .kind = CIO__SLOT_PLAIN};
    cio__slot_schedule_reserved(t->loop, t->lost_slot, &proto);
    t->lost_reserved = false;
}

void cio__transport_force_close(cio_transport_t *t, int err)
{
    if (t->lost)
        return;
    free(t->wbuf);
    t->wbuf = NULL;
    t->whead = t->wlen = t->wcap = 0;
    cio__io_stop(t->loop, t->fd, t, CIO__IO_WRITE);
    if (!t->closing) {
        t->closing = true;
        cio__io_stop(t->loop, t->fd, t, CIO__IO_READ);
    }
    cio__transport_schedule_lost(t, err);
}

/*
 * asyncio's _fatal_error: socket errors (the peer reset, say) close the
 * transport quietly; a failing protocol callback or anything unexpected is
 * also reported to the exception handler.
 */
void cio__transport_fatal(cio_transport_t *t, int err, const char *message, bool protocol_failed)
{
    if (protocol_failed || (err != -ECONNRESET && err != -EPIPE && err != -ETIMEDOUT &&
                            err != -ECONNABORTED && err != -ENOTCONN && !cio__tls_quiet_error(err) &&
                            !cio__proxy_quiet_error(err))) {
        cio_exception_context_t ctx;
        cio_exception_context_init(&ctx, message);
        ctx.error = err;
        ctx.transport = t;
        ctx.protocol = t->protocol;
        ctx.socket = t->fd;
        cio_loop_call_exception_handler(t->loop, &ctx);
    }
    cio__transport_force_close(t, err);
}

void cio_transport_close(cio_transport_t *t)
{
    assert(!cio__wrong_thread(t->loop));
    if (t->closing)
        return;
    if (t->tls)
        cio__tls_close(t); /* close_notify joins the write buffer */
    t->closing = true;
    cio__io_stop(t->loop, t->fd, t, CIO__IO_READ);
    if (t->wlen == 0)
        cio__transport_schedule_lost(t, 0);
}

void cio_transport_abort(cio_transport_t *t)
{
    assert(!cio__wrong_thread(t->loop));
    if (t->tls && !t->lost)
        cio__tls_abort(t);
    cio__transport_force_close(t, 0);
}

bool cio_transport_is_closing(const cio_transport_t *t)
{
    return t->closing;
}

/* ---- reading: started after connection_made, paused and resumed ---------------- */

int cio__transport_read_start(cio_transport_t *t)
{
    if (t->closing || t->paused || !t->made)
        return 0;
    cio_callback_t cb = t->kind == CIO__DGRAM          ? cio__dgram_on_readable
                        : t->pipe == CIO__PIPE_WRITE ? cio__pipe_on_hup
                                                     : cio__stream_on_readable;
    return cio__io_start(t->loop, t->fd, t, CIO__IO_READ, cb, t);
}

/* Arm the write watch while bytes wait. */
int cio__transport_watch_writes(cio_transport_t *t)
{
    cio_callback_t cb = t->kind == CIO__DGRAM ? cio__dgram_on_writable : cio__stream_on_writable;
    int rc = cio__io_start(t->loop, t->fd, t, CIO__IO_WRITE, cb, t);
    if (rc < 0)
        cio__transport_fatal(t, rc, "cannot watch the socket", false);
    return rc;
}

bool cio_transport_is_reading(const cio_transport_t *t)
{
    return !t->paused && !t->closing;
}

void cio_transport_pause_reading(cio_transport_t *t)
{
    if (!cio_transport_is_reading(t) || t->pipe == CIO__PIPE_WRITE) /* it reads only hang-ups */
        return;
    t->paused = true;
    cio__io_stop(t->loop, t->fd, t, CIO__IO_READ);
}

void cio_transport_resume_reading(cio_transport_t *t)
{
    if (t->closing || !t->paused)
        return;
    t->paused = false;
    int rc = cio__transport_read_start(t);
    if (rc < 0)
        cio__transport_fatal(t, rc, "cannot watch the socket", false);
    else if (t->kind == CIO__DGRAM)
        cio__dgram_resumed(t);
    else if (t->tls)
        cio__tls_resumed(t); /* OpenSSL may hold records the socket will not announce */
}

/* ---- the write buffer and its water marks ------------------------------------- */

void cio__transport_maybe_pause(cio_transport_t *t)
{
    if (t->wlen <= t->high || t->protocol_paused)
        return;
    t->protocol_paused = true;
    if (ops_of(t)->pause_writing) {
        int rc = ops_of(t)->pause_writing(t->protocol);
        if (rc < 0)
            cio__transport_fatal(t, rc, "protocol.pause_writing() failed", true);
    }
}

void cio__transport_maybe_resume(cio_transport_t *t)
{
    if (!t->protocol_paused || t->wlen > t->low)
        return;
    t->protocol_paused = false;
    if (ops_of(t)->resume_writing) {
        int rc = ops_of(t)->resume_writing(t->protocol);
        if (rc < 0)
            cio__transport_fatal(t, rc, "protocol.resume_writing() failed", true);
    }
}

/*
 * Make room for @p len more bytes at the end of the write buffer, moving what
 * waits to the front first. Done before anything is copied, so a write goes
 * into the buffer whole or not at all.
 */
int cio__transport_buffer_reserve(cio_transport_t *t, size_t len)
{
    if (len > SIZE_MAX / 2 - t->wlen)
        return -ENOMEM;
    if (t->whead > 0 && t->whead + t->wlen + len > t->wcap) {
        memmove(t->wbuf, t->wbuf + t->whead, t->wlen);
        t->whead = 0;
    }
    if (t->wlen + len > t->wcap) {
        size_t cap = t->wcap ? t->wcap : 4096;
        while (cap < t->wlen + len)
            cap *= 2;
        uint8_t *v = realloc(t->wbuf, cap);
        if (!v)
            return -ENOMEM;
        t->wbuf = v;
        t->wcap = cap;
    }
    assert(t->whead + t->wlen + len <= t->wcap);
    return 0;
}

/* Append @p len bytes for which cio__transport_buffer_reserve() made room. */
void cio__transport_buffer_put(cio_transport_t *t, const void *data, size_t len)
{
    assert(t->whead + t->wlen + len <= t->wcap);
    memcpy(t->wbuf + t->whead + t->wlen, data, len);
    t->wlen += len;
}

void cio__transport_flushed(cio_transport_t *t)
{
    assert(t->wlen == 0);
    if (t->drained) {
        cio_future_set_result(t->drained, NULL);
        cio_future_unref(t->drained);
        t->drained = NULL;
    }
    cio__io_stop(t->loop, t->fd, t, CIO__IO_WRITE);
    /* An idle connection keeps no write buffer. */
    free(t->wbuf);
    t->wbuf = NULL;
    t->whead = t->wcap = 0;
    cio__transport_maybe_resume(t);
    if (t->closing)
        cio__transport_schedule_lost(t, 0);
    else if (t->eof && t->kind == CIO__STREAM)
        shutdown(t->fd, SHUT_WR);
}

size_t cio_transport_get_write_buffer_size(const cio_transport_t *t)
{
    return t->kind == CIO__DGRAM ? t->dgram_bytes : t->wlen;
}

void cio_transport_get_write_buffer_limits(const cio_transport_t *t, size_t *low, size_t *high)
{
    if (low)
        *low = t->low;
    if (high)
        *high = t->high;
}

int cio_transport_set_write_buffer_limits(cio_transport_t *t, ssize_t high, ssize_t low)
{
    if (high < 0)
        high = low < 0 ? HIGH_WATER_DEFAULT : 4 * low;
    if (low < 0)
        low = high / 4;
    if (!(high >= low && low >= 0))
        return -EINVAL;
    t->high = (size_t)high;
    t->low = (size_t)low;
    cio__transport_maybe_pause(t);
    return 0;
}

/* ---- idle timeout ------------------------------------------------------------------ */

/* The idle timer is due: close the transport if nothing moved since it was set. */
static int idle_check(void *arg)
{
    cio_transport_t *t = arg;
    t->idle_timer = (cio_handle_t){0};
    if (t->lost || t->idle_timeout <= 0)
        return 0;
    double due = t->last_io + t->idle_timeout;
    if (t->loop->now >= due) {
        cio__transport_force_close(t, -ETIMEDOUT);
        return 0;
    }
    int rc = cio_loop_call_at(t->loop, due, idle_check, t, &t->idle_timer);
    if (rc < 0) /* it does not go on without its timeout */
        cio__transport_fatal(t, rc, "cannot re-arm the idle timeout", false);
    return 0;
}

int cio_transport_set_idle_timeout(cio_transport_t *t, double seconds)
{
    if (!t || !(seconds >= 0) || isinf(seconds))
        return -EINVAL;
    assert(!cio__wrong_thread(t->loop));
    cio_handle_cancel(t->idle_timer);
    t->idle_timer = (cio_handle_t){0};
    t->idle_timeout = seconds;
    if (seconds == 0 || t->lost)
        return 0;
    return cio_loop_call_at(t->loop, t->last_io + seconds, idle_check, t, &t->idle_timer);
}

/* ---- the rest of the transport API ------------------------------------------------ */

cio_loop_t *cio_transport_get_loop(const cio_transport_t *t)
{
    return t->loop;
}

void cio_transport_set_protocol(cio_transport_t *t, cio_protocol_t *p)
{
    if (p)
        t->protocol = p;
}

cio_protocol_t *cio_transport_get_protocol(const cio_transport_t *t)
{
    return t->protocol;
}

int cio_transport_get_extra_info(cio_transport_t *t, const char *name, cio_extra_info_t *info)
{
    if (!name || !info)
        return -EINVAL;
    memset(info, 0, sizeof(*info));
    info->fd = -1;
    info->addrlen = sizeof(info->addr);
    if (t->proxy || t->dproxy) {
        int rc = t->proxy ? cio__proxy_extra_info(t, name, info)
                          : cio__dgram_proxy_extra_info(t, name, info);
        if (rc <= 0)
            return rc;
    }
    if (t->tls) {
        int rc = cio__tls_extra_info(t, name, info);
        if (rc <= 0)
            return rc;
    }
    if (strcmp(name, t->pipe ? "pipe" : "socket") == 0) {
        info->fd = t->fd;
        info->addrlen = 0;
        return 0;
    }
    int rc;
    if (strcmp(name, "peername") == 0 || strcmp(name, "socket_peername") == 0)
        rc = getpeername(t->fd, (struct sockaddr *)&info->addr, &info->addrlen);
    else if (strcmp(name, "sockname") == 0 || strcmp(name, "socket_sockname") == 0)
        rc = getsockname(t->fd, (struct sockaddr *)&info->addr, &info->addrlen);
    else
        return -ENOENT;
    return rc < 0 ? -ENOENT : 0;
}

/* ---- creation -------------------------------------------------------------------- */

/* The start failed: the connection's future fails with the error; the transport goes. */
static void fail_start(cio_transport_t *t, int err, const char *message, bool protocol_failed)
{
    if (t->waiter && !cio_future_done(t->waiter))
        cio_future_set_error(t->waiter, err, message);
    cio__transport_fatal(t, err, message, protocol_failed);
}

static int call_connection_made(void *arg)
{
    cio_transport_t *t = arg;
    if (t->lost)
        return 0;
    t->made = true;
    if (t->proxy) { /* the PROXY header comes first, then TLS or the protocol */
        cio__proxy_begin(t);
        return 0;
    }
    if (t->tls) { /* the protocol hears connection_made once the handshake is done */
        int rc = cio__transport_read_start(t);
        if (rc < 0)
            fail_start(t, rc, "cannot watch the socket", false);
        else
            cio__tls_begin(t);
        return 0;
    }
    cio__transport_made(t);
    return 0;
}

void cio__transport_made(cio_transport_t *t)
{
    if (ops_of(t)->connection_made) {
        int rc = ops_of(t)->connection_made(t->protocol, t);
        if (rc < 0) {
            fail_start(t, rc, "protocol.connection_made() failed", true);
            return;
        }
    }
    /* asyncio: the reader is added and the waiter woken right after (after a
     * PROXY header it is there already: adding it again changes nothing). */
    int rc = cio__transport_read_start(t);
    if (rc < 0)
        fail_start(t, rc, "cannot watch the socket", false);
    else if (t->waiter && !cio_future_done(t->waiter))
        cio_future_set_result(t->waiter, t);
}

/*
 * The first half of making a transport: its memory and the slots its
 * connection_made and connection_lost will take, all that can fail. Callers
 * make the protocol only after this succeeded: a protocol whose transport then
 * could not be made would never hear connection_lost, so never free itself.
 */
cio_transport_t *cio__transport_alloc(cio_loop_t *loop)
{
    if (cio__schedule_check(loop, (const void *)call_connection_made) < 0)
        return NULL;
    cio_transport_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (cio__slot_reserve(loop, &t->lost_slot) < 0)
        goto err_free;
    if (cio__slot_reserve(loop, &t->made_slot) < 0)
        goto err_lost;
    t->lost_reserved = true;
    t->loop = loop;
    return t;

err_lost:
    cio__slot_unreserve(loop, t->lost_slot);
err_free:
    free(t);
    return NULL;
}

/* Give back a transport cio__transport_start() was not called on (NULL is ignored). */
void cio__transport_discard(cio_transport_t *t)
{
    if (!t)
        return;
    if (t->tls)
        cio__tls_free(t);
    if (t->proxy)
        cio__proxy_free(t);
    if (t->dproxy)
        cio__dgram_proxy_free(t);
    cio__slot_unreserve(t->loop, t->made_slot);
    cio__slot_unreserve(t->loop, t->lost_slot);
    free(t);
}

/*
 * The second half, which cannot fail: wrap the non-blocking socket @p fd in
 * @p t, of @p kind, with @p protocol. connection_made is scheduled; @p waiter
 * (optional) gets the transport as its result once it has run.
 */
void cio__transport_start(cio_transport_t *t, int fd, int kind, cio_protocol_t *protocol,
                          struct cio_server_s *server, cio_future_t *waiter)
{
    cio_loop_t *loop = t->loop;
    t->protocol = protocol;
    t->fd = fd;
    t->kind = (uint8_t)kind;
    t->high = HIGH_WATER_DEFAULT;
    t->low = HIGH_WATER_DEFAULT / 4;
    t->waiter = waiter ? cio_future_ref(waiter) : NULL;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (kind == CIO__STREAM && getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
        (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    cio__slot_t made = {.fn.cb = call_connection_made, .arg = t, .kind = CIO__SLOT_PLAIN};
    cio__slot_schedule_reserved(loop, t->made_slot, &made);
    t->server = server;
    if (server) {
        cio__server_attach(server, t);
        loop->accepted++;
    }
    t->last_io = cio__now();
    cio__queue_insert_tail(&loop->transports, &t->link);
    loop->ntransports++;
}
