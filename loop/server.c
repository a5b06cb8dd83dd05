/*
 * loop/server.c: listening servers (asyncio's Server and _start_serving).
 * Each listening socket is watched for readability; one wake-up accepts up to
 * backlog connections. When the process runs out of descriptors or memory the
 * socket stops accepting for a second instead of spinning, and says why.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "coreio/proxy.h"
#include "internal.h"

#define BACKLOG_DEFAULT    100
#define ACCEPT_RETRY_DELAY 1.0 /* seconds, asyncio's constants.ACCEPT_RETRY_DELAY */

typedef struct listener {
    struct cio_server_s *server;
    int fd;
    bool watching;
    cio_handle_t retry; /* the timer resuming accepts after EMFILE and the like */
} listener_t;

struct cio_server_s {
    cio_loop_t *loop;
    cio_protocol_factory_t factory;
    void *factory_arg;
    listener_t *ls;
    size_t nls;
    int backlog;
    bool serving;
    bool closed;
    bool freed; /* cio_server_free() was called */
    /* Written by the loop only; other threads may read them (sharded servers). */
    _Atomic size_t active;   /* connections not lost yet */
    _Atomic size_t accepted; /* connections served so far */
    double idle_timeout;     /* given to each connection */
    size_t write_high, write_low;
    int (*on_accept)(void *arg, int fd);
    void *on_accept_arg;
    SSL_CTX *ssl; /* a reference; NULL: plaintext */
    double ssl_handshake_timeout, ssl_shutdown_timeout;
    cio_proxy_opts_t proxy; /* a copy; versions 0: no PROXY header */
    cio_future_t *forever;  /* serve_forever's future */
    cio_future_t **waiters; /* wait_closed futures */
    size_t nwaiters;
    cio__queue_t link; /* in loop->servers */
};

static size_t count_of(const _Atomic size_t *c);

static void server_release(cio_server_t *s)
{
    assert(s->closed && count_of(&s->active) == 0); /* closed, and no connection refers to it */
    cio__queue_remove(&s->link);
    SSL_CTX_free(s->ssl);
    cio__proxy_opts_clear(&s->proxy);
    free(s->ls);
    free(s->waiters);
    free(s);
}

/* The loop's own read of a counter only it writes. */
static size_t count_of(const _Atomic size_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Add @p delta to a counter only this loop writes: no read-modify-write needed. */
static void count_add(_Atomic size_t *c, int delta)
{
    assert(delta >= 0 || count_of(c) >= (size_t)-delta);
    atomic_store_explicit(c, count_of(c) + (size_t)delta, memory_order_relaxed);
}

/* Free the memory once nobody can reach the server any more. */
static void maybe_release(cio_server_t *s)
{
    if (s->freed && count_of(&s->active) == 0)
        server_release(s);
}

/* Closed and no connection left: wake every wait_closed. */
static void wake_waiters(cio_server_t *s)
{
    if (!s->closed || count_of(&s->active) > 0)
        return;
    for (size_t i = 0; i < s->nwaiters; i++) {
        if (!cio_future_done(s->waiters[i]))
            cio_future_set_result(s->waiters[i], NULL);
        cio_future_unref(s->waiters[i]);
    }
    s->nwaiters = 0;
}

void cio__server_attach(cio_server_t *s, cio_transport_t *t)
{
    count_add(&s->active, 1);
    count_add(&s->accepted, 1);
}

void cio__server_detach(cio_server_t *s, cio_transport_t *t)
{
    count_add(&s->active, -1);
    wake_waiters(s);
    maybe_release(s);
}

/* ---- accepting ------------------------------------------------------------------ */

static int resume_accepting(void *arg);

static void stop_watching(listener_t *l)
{
    if (l->watching)
        cio__io_stop(l->server->loop, l->fd, l, CIO__IO_READ);
    l->watching = false;
}

/* Out of descriptors or memory: report it and pause this socket for a while. */
static void accept_backoff(listener_t *l, int err)
{
    cio_exception_context_t ctx;
    cio_exception_context_init(&ctx, "socket.accept() out of system resource");
    ctx.error = err;
    ctx.socket = l->fd;
    cio_loop_call_exception_handler(l->server->loop, &ctx);
    stop_watching(l);
    cio_loop_call_later(l->server->loop, ACCEPT_RETRY_DELAY, resume_accepting, l, &l->retry);
}

/* The accepted socket @p fd cannot be served: close it and say why, as asyncio does. */
static int refuse(cio_server_t *s, int fd, const char *message)
{
    close(fd);
    cio_exception_context_t ctx;
    cio_exception_context_init(&ctx, message);
    ctx.error = -ENOMEM;
    cio_loop_call_exception_handler(s->loop, &ctx);
    return -ENOMEM;
}

/*
 * With PROXY headers: 0 if the peer of @p fd (at @p peer, as accept4 gave it;
 * NULL: ask the socket) may send one, CIO_EPROXYUNTRUSTED if not, or -errno
 * when the connection is gone already (a peer that reset it before we got to
 * it: nothing to serve, nobody to blame).
 */
static int check_peer(const cio_server_t *s, int fd, const struct sockaddr *peer)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (!peer && getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    return cio_proxy_trusted(&s->proxy, peer ? peer : (struct sockaddr *)&ss) ? 0
                                                                              : CIO_EPROXYUNTRUSTED;
}

/* Serve the accepted socket @p fd (from @p peer, or NULL: not known) here (consumed):
 * a transport with a new protocol. */
static int serve(cio_server_t *s, int fd, const struct sockaddr *peer)
{
    int rc = s->proxy.versions ? check_peer(s, fd, peer) : 0;
    if (rc < 0) {
        if (rc == CIO_EPROXYUNTRUSTED)
            cio__proxy_log_refusal(s->loop, fd, rc);
        close(fd);
        return 0;
    }
    /* What can fail comes first: the protocol is made only for a transport. */
    cio_transport_t *t = cio__transport_alloc(s->loop);
    cio__tls_params_t tls = {s->ssl, true, NULL, s->ssl_handshake_timeout, s->ssl_shutdown_timeout,
                             NULL};
    if (!t || (s->ssl && cio__tls_attach(t, &tls) < 0) ||
        (s->proxy.versions && cio__proxy_attach(t, &s->proxy) < 0)) {
        cio__transport_discard(t);
        return refuse(s, fd, "Error on transport creation for incoming connection");
    }
    cio_protocol_t *p = s->factory(s->factory_arg);
    if (!p || !p->ops) {
        cio__transport_discard(t);
        return refuse(s, fd, "protocol factory failed for an accepted connection");
    }
    cio__transport_start(t, fd, CIO__STREAM, p, s, NULL);
    if (s->write_high || s->write_low)
        cio_transport_set_write_buffer_limits(t, s->write_high ? (ssize_t)s->write_high : -1,
                                              s->write_low ? (ssize_t)s->write_low : -1);
    rc = s->idle_timeout > 0 ? cio_transport_set_idle_timeout(t, s->idle_timeout) : 0;
    if (rc < 0) /* a connection promised a timeout does not go on without one */
        cio__transport_fatal(t, rc, "cannot arm the idle timeout", false);
    return rc;
}

static void accept_one(cio_server_t *s, int fd, const struct sockaddr *peer)
{
    if (s->on_accept) {
        int rc = s->on_accept(s->on_accept_arg, fd);
        if (rc < 0)
            cio__log(CIO_LOG_ERROR, "on_accept failed: %s", cio_strerror(rc));
        return;
    }
    serve(s, fd, peer);
}

int cio_server_serve_accepted(cio_server_t *s, int fd)
{
    if (!s || !s->factory || fd < 0) {
        if (fd >= 0)
            close(fd);
        return -EINVAL;
    }
    if (s->closed) {
        close(fd);
        return CIO_ECLOSED;
    }
    int rc = cio__set_nonblocking(fd);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return serve(s, fd, NULL);
}

/* Close, or abort, every connection of @p s. */
static void each_client(cio_server_t *s, void (*fn)(cio_transport_t *))
{
    cio__queue_t *q = &s->loop->transports;
    for (cio__queue_t *n = q->next; n != q; n = n->next) {
        cio_transport_t *t = cio_container_of(n, cio_transport_t, link);
        if (t->server == s)
            fn(t);
    }
}

void cio_server_close_clients(cio_server_t *s)
{
    each_client(s, cio_transport_close);
}

void cio_server_abort_clients(cio_server_t *s)
{
    each_client(s, cio_transport_abort);
}

static int on_acceptable(void *arg)
{
    listener_t *l = arg;
    cio_server_t *s = l->server;
    /* The PROXY trust check needs the peer's address: accept4 gives it for free. */
    bool want_peer = s->proxy.versions && !s->on_accept;
    struct sockaddr_storage peer;
    for (int i = 0; i < s->backlog && s->serving; i++) {
        socklen_t len = sizeof(peer);
        int fd = accept4(l->fd, want_peer ? (struct sockaddr *)&peer : NULL,
                         want_peer ? &len : NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            accept_one(s, fd, want_peer ? (struct sockaddr *)&peer : NULL);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            accept_backoff(l, -errno);
        else if (errno != EAGAIN)
            cio__log(CIO_LOG_ERROR, "accept() on socket %d failed: %s", l->fd,
                     cio_strerror(-errno));
        break;
    }
    return 0;
}

static int watch(listener_t *l)
{
    int rc = cio__io_start(l->server->loop, l->fd, l, CIO__IO_READ, on_acceptable, l);
    l->watching = rc == 0;
    return rc;
}

static int resume_accepting(void *arg)
{
    listener_t *l = arg;
    l->retry = (cio_handle_t){0};
    if (l->server->serving && !l->watching)
        watch(l);
    return 0;
}

static int start_serving(cio_server_t *s)
{
    if (s->closed)
        return CIO_ECLOSED;
    if (s->serving)
        return 0;
    for (size_t i = 0; i < s->nls; i++) {
        if (listen(s->ls[i].fd, s->backlog) < 0)
            return -errno;
    }
    s->serving = true;
    for (size_t i = 0; i < s->nls; i++) {
        int rc = watch(&s->ls[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* opts.socks, when used: every entry a descriptor. */
static bool socks_valid(const cio_server_opts_t *o)
{
    if (!o->use_sock || !o->nsocks)
        return true;
    for (size_t i = 0; o->socks && i < o->nsocks; i++)
        if (o->socks[i] < 0)
            return false;
    return o->socks != NULL;
}

/* Per-connection settings a create_server call or a reconfigure may give. */
static bool connection_opts_valid(const cio_server_opts_t *o)
{
    return o->idle_timeout >= 0 && !isinf(o->idle_timeout) && o->backlog >= 0 &&
           !(o->write_high && o->write_low > o->write_high) && o->ssl_handshake_timeout >= 0 &&
           o->ssl_handshake_timeout < 1e9 && o->ssl_shutdown_timeout >= 0 &&
           o->ssl_shutdown_timeout < 1e9 && cio__proxy_opts_valid(o->proxy) && socks_valid(o);
}

/* Take @p o's TLS settings for the connections served from now on. */
static void set_tls(cio_server_t *s, const cio_server_opts_t *o)
{
    if (o->ssl)
        SSL_CTX_up_ref(o->ssl);
    SSL_CTX_free(s->ssl);
    s->ssl = o->ssl;
    s->ssl_handshake_timeout = o->ssl_handshake_timeout;
    s->ssl_shutdown_timeout = o->ssl_shutdown_timeout;
}

int cio_server_reconfigure(cio_server_t *s, const cio_server_opts_t *o)
{
    if (!s || !o || !connection_opts_valid(o))
        return -EINVAL;
    cio_proxy_opts_t proxy = {0};
    if (cio__proxy_opts_copy(&proxy, o->proxy) < 0)
        return -ENOMEM;
    int backlog = o->backlog > 0 ? o->backlog : BACKLOG_DEFAULT;
    for (size_t i = 0; s->serving && backlog != s->backlog && i < s->nls; i++) {
        if (listen(s->ls[i].fd, backlog) < 0) {
            cio__proxy_opts_clear(&proxy);
            return -errno;
        }
    }
    cio__proxy_opts_clear(&s->proxy);
    s->proxy = proxy;
    s->backlog = backlog;
    s->idle_timeout = o->idle_timeout;
    s->write_high = o->write_high;
    s->write_low = o->write_low;
    set_tls(s, o);
    return 0;
}

/* ---- the Server object ------------------------------------------------------------- */

static int forever_done(cio_future_t *fut, void *arg)
{
    cio_server_close(arg); /* serve_forever was cancelled: close, as asyncio */
    return 0;
}

void cio_server_close(cio_server_t *s)
{
    if (!s || s->closed)
        return;
    assert(!cio__wrong_thread(s->loop));
    s->closed = true;
    s->serving = false;
    for (size_t i = 0; i < s->nls; i++) {
        stop_watching(&s->ls[i]);
        cio_handle_cancel(s->ls[i].retry);
        close(s->ls[i].fd);
    }
    if (s->forever) {
        cio_future_t *f = s->forever;
        s->forever = NULL;
        cio_future_remove_done_callback(f, forever_done, s);
        cio_future_cancel(f, NULL);
        cio_future_unref(f);
    }
    wake_waiters(s);
}

cio_loop_t *cio_server_get_loop(const cio_server_t *s)
{
    return s->loop;
}

/* A future already settled with @p rc (0: a NULL result). */
static cio_future_t *settled(cio_loop_t *loop, int rc)
{
    cio_future_t *fut = cio_loop_create_future(loop);
    if (fut && rc == 0)
        cio_future_set_result(fut, NULL);
    else if (fut)
        cio_future_set_error(fut, rc, NULL);
    return fut;
}

cio_future_t *cio_server_start_serving(cio_server_t *s)
{
    return settled(s->loop, start_serving(s));
}

cio_future_t *cio_server_serve_forever(cio_server_t *s)
{
    if (s->forever)
        return settled(s->loop, -EBUSY);
    int rc = start_serving(s);
    if (rc < 0)
        return settled(s->loop, rc);
    cio_future_t *fut = cio_loop_create_future(s->loop);
    if (!fut)
        return NULL;
    if (cio_future_add_done_callback(fut, forever_done, s) < 0) {
        cio_future_unref(fut);
        return NULL;
    }
    s->forever = cio_future_ref(fut);
    return fut;
}

bool cio_server_is_serving(const cio_server_t *s)
{
    return s->serving;
}

cio_future_t *cio_server_wait_closed(cio_server_t *s)
{
    if (s->closed && count_of(&s->active) == 0)
        return settled(s->loop, 0);
    cio_future_t **v = realloc(s->waiters, (s->nwaiters + 1) * sizeof(*v));
    if (!v)
        return NULL;
    s->waiters = v;
    cio_future_t *fut = cio_loop_create_future(s->loop);
    if (!fut)
        return NULL;
    s->waiters[s->nwaiters++] = cio_future_ref(fut);
    return fut;
}

size_t cio_server_sockets(const cio_server_t *s, int *fds, size_t max)
{
    for (size_t i = 0; i < s->nls && i < max; i++)
        fds[i] = s->ls[i].fd;
    return s->closed ? 0 : s->nls;
}

size_t cio_server_active_connections(const cio_server_t *s)
{
    return count_of(&s->active);
}

size_t cio_server_accepted_connections(const cio_server_t *s)
{
    return count_of(&s->accepted);
}

void cio_server_free(cio_server_t *s)
{
    if (!s)
        return;
    assert(!cio__wrong_thread(s->loop));
    cio_server_close(s);
    for (size_t i = 0; i < s->nwaiters; i++) {
        cio_future_cancel(s->waiters[i], NULL);
        cio_future_unref(s->waiters[i]);
    }
    s->nwaiters = 0;
    s->freed = true;
    maybe_release(s);
}

/* The loop is closing: close and free whatever servers are left. */
void cio__servers_destroy_all(cio_loop_t *loop)
{
    while (!cio__queue_empty(&loop->servers)) {
        cio_server_t *s = cio_container_of(loop->servers.next, cio_server_t, link);
        cio_server_close(s);
        for (size_t i = 0; i < s->nwaiters; i++)
            cio_future_unref(s->waiters[i]);
        server_release(s);
    }
}

/* ---- creating ------------------------------------------------------------------------ */

/* A server around the bound sockets @p fds (ownership passes to it). */
static cio_server_t *server_new(cio_loop_t *loop, cio_protocol_factory_t factory, void *arg,
                                const int *fds, size_t n, const cio_server_opts_t *o)
{
    cio_server_t *s = calloc(1, sizeof(*s));
    listener_t *ls = calloc(n ? n : 1, sizeof(*ls));
    if (!s || !ls || cio__proxy_opts_copy(&s->proxy, o->proxy) < 0) {
        free(s);
        free(ls);
        return NULL;
    }
    s->loop = loop;
    s->factory = factory;
    s->factory_arg = arg;
    s->backlog = o->backlog > 0 ? o->backlog : BACKLOG_DEFAULT;
    s->idle_timeout = o->idle_timeout;
    s->write_high = o->write_high;
    s->write_low = o->write_low;
    s->on_accept = o->on_accept;
    s->on_accept_arg = o->on_accept_arg;
    set_tls(s, o);
    s->ls = ls;
    s->nls = n;
    for (size_t i = 0; i < n; i++)
        ls[i] = (listener_t){.server = s, .fd = fds[i]};
    cio__queue_insert_tail(&loop->servers, &s->link);
    return s;
}

/* Bind one socket for @p ai, with asyncio's options. Returns the fd or -errno. */
static int bind_one(const struct addrinfo *ai, const cio_server_opts_t *o)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (o->reuse_address != CIO_OFF)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (o->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto err;
    /* asyncio: IPv6 sockets do not also take IPv4, which has its own. */
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        goto err;
    return fd;
err:;
    int err = -errno;
    close(fd);
    return err;
}

typedef struct create_args {
    cio_loop_t *loop;
    cio_protocol_factory_t factory;
    void *factory_arg;
    cio_server_opts_t opts;
    cio_proxy_opts_t proxy; /* opts.proxy points here: the caller's may go at once */
    int *socks;             /* opts.socks, copied */
    bool own_socks;         /* use_sock's sockets, until the task takes them: closed with us */
    char **hosts;           /* NULL entries mean every interface */
    size_t nhosts;
    char *port;
    char *unix_path;
} create_args_t;

/* The given sockets (use_sock): sock, or the nsocks of socks; into *@p n. */
static int *given_socks(create_args_t *a, size_t *n)
{
    *n = a->opts.nsocks ? a->opts.nsocks : a->opts.sock >= 0;
    return a->opts.nsocks ? a->socks : &a->opts.sock;
}

static void create_args_free(void *arg)
{
    create_args_t *a = arg;
    size_t n;
    int *fds = given_socks(a, &n);
    for (size_t i = 0; a->own_socks && i < n; i++)
        close(fds[i]); /* the task never ran: they were ours all the same */
    for (size_t i = 0; i < a->nhosts; i++)
        free(a->hosts[i]);
    free(a->hosts);
    free(a->port);
    free(a->unix_path);
    SSL_CTX_free(a->opts.ssl);
    cio__proxy_opts_clear(&a->proxy);
    free(a->socks);
    free(a);
}

/* Finish: the server, listening if asked; consumes @p fds. */
static int make_server(create_args_t *a, int *fds, size_t n, void **result)
{
    cio_server_t *s = server_new(a->loop, a->factory, a->factory_arg, fds, n, &a->opts);
    if (!s) {
        for (size_t i = 0; i < n; i++)
            close(fds[i]);
        return -ENOMEM;
    }
    if (a->opts.start_serving != CIO_OFF) {
        int rc = start_serving(s);
        if (rc < 0) {
            s->freed = true;
            cio_server_close(s);
            maybe_release(s);
            return rc;
        }
    }
    *result = s;
    return 0;
}

/* The task behind cio_loop_create_server(). */
static int create_server_task(void *arg, void **result)
{
    create_args_t *a = arg;
    int *fds = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (size_t h = 0; h < a->nhosts && rc == 0; h++) {
        struct addrinfo hints = {.ai_family = a->opts.family,
                                 .ai_socktype = SOCK_STREAM,
                                 .ai_flags = a->opts.flags | AI_PASSIVE};
        struct addrinfo *res = NULL;
        rc = cio__resolve(a->loop, a->hosts[h], a->port, &hints, &res);
        for (struct addrinfo *ai = res; ai && rc == 0; ai = ai->ai_next) {
            if (n == cap) {
                cap = cap ? 2 * cap : 4;
                int *v = realloc(fds, cap * sizeof(*v));
                if (!v) {
                    rc = -ENOMEM;
                    break;
                }
                fds = v;
            }
            int fd = bind_one(ai, &a->opts);
            if (fd < 0)
                rc = fd;
            else
                fds[n++] = fd;
        }
        if (res)
            freeaddrinfo(res);
    }
    if (rc == 0)
        rc = make_server(a, fds, n, result);
    else
        for (size_t i = 0; i < n; i++)
            close(fds[i]);
    free(fds);
    create_args_free(a);
    return rc;
}

static cio_future_t *run_create(create_args_t *a, cio_task_fn fn)
{
    return cio__spawn(a->loop, fn, a, create_args_free);
}

static create_args_t *create_args_new(cio_loop_t *loop, cio_protocol_factory_t factory,
                                      void *factory_arg, const cio_server_opts_t *opts)
{
    if (!loop || (!factory && !(opts && opts->on_accept)) || atomic_load(&loop->closed))
        return NULL;
    if (opts && !connection_opts_valid(opts))
        return NULL;
    create_args_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->loop = loop;
    a->factory = factory;
    a->factory_arg = factory_arg;
    if (cio__proxy_opts_copy(&a->proxy, opts ? opts->proxy : NULL) < 0) {
        free(a);
        return NULL;
    }
    if (opts)
        a->opts = *opts;
    a->opts.hosts = NULL;
    a->opts.proxy = a->opts.proxy ? &a->proxy : NULL;
    a->opts.nsocks = a->opts.use_sock ? a->opts.nsocks : 0;
    if (a->opts.nsocks) {
        if (!(a->socks = malloc(a->opts.nsocks * sizeof(int)))) {
            create_args_free(a);
            return NULL;
        }
        memcpy(a->socks, opts->socks, a->opts.nsocks * sizeof(int));
    }
    a->opts.socks = a->socks;
    if (a->opts.ssl) /* the caller may free its context at once */
        SSL_CTX_up_ref(a->opts.ssl);
    return a;
}

/* Existing listening sockets (sock, or socks): no resolution, no binding. */
static int existing_sock_task(void *arg, void **result)
{
    create_args_t *a = arg;
    size_t n;
    int *fds = given_socks(a, &n), rc = 0;
    a->own_socks = false; /* taken: make_server() consumes them, or they are closed here */
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = cio__set_nonblocking(fds[i]);
    for (size_t i = 0; rc < 0 && i < n; i++)
        close(fds[i]); /* taken, as make_server() takes them */
    if (rc == 0)       /* n 0: a server only for connections accepted elsewhere */
        rc = make_server(a, n ? fds : NULL, n, result);
    create_args_free(a);
    return rc;
}

/* As run_create() for the given sockets, which are the loop's once the future exists. */
static cio_future_t *run_with_socks(create_args_t *a)
{
    cio_future_t *f = run_create(a, existing_sock_task);
    if (f) /* the task has not run yet */
        a->own_socks = true;
    return f;
}

cio_future_t *cio_loop_create_server(cio_loop_t *loop, cio_protocol_factory_t factory,
                                     void *factory_arg, const char *host, const char *port,
                                     const cio_server_opts_t *opts)
{
    create_args_t *a = create_args_new(loop, factory, factory_arg, opts);
    if (!a)
        return NULL;
    if (a->opts.use_sock)
        return run_with_socks(a);
    size_t n = opts && opts->hosts ? opts->nhosts : 1;
    a->hosts = calloc(n, sizeof(*a->hosts));
    a->nhosts = a->hosts ? n : 0; /* what create_args_free() walks */
    bool ok = a->hosts && (!port || (a->port = strdup(port)));
    for (size_t i = 0; ok && i < n; i++) {
        const char *h = opts && opts->hosts ? opts->hosts[i] : host;
        ok = !h || (a->hosts[i] = strdup(h));
    }
    if (!ok) {
        create_args_free(a);
        return NULL;
    }
    return run_create(a, create_server_task);
}

/* The task behind cio_loop_create_unix_server(). */
static int create_unix_server_task(void *arg, void **result)
{
    create_args_t *a = arg;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int rc = 0;
    if (strlen(a->unix_path) >= sizeof(sun.sun_path)) {
        rc = -ENAMETOOLONG;
        goto out;
    }
    strcpy(sun.sun_path, a->unix_path);
    /* asyncio removes a stale socket file, and nothing else. */
    struct stat st;
    if (a->unix_path[0] && stat(a->unix_path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(a->unix_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        rc = -errno;
        close(fd);
        goto out;
    }
    rc = make_server(a, &fd, 1, result);
out:
    create_args_free(a);
    return rc;
}

cio_future_t *cio_loop_create_unix_server(cio_loop_t *loop, cio_protocol_factory_t factory,
                                          void *factory_arg, const char *path,
                                          const cio_server_opts_t *opts)
{
    create_args_t *a = create_args_new(loop, factory, factory_arg, opts);
    if (!a)
        return NULL;
    if (a->opts.use_sock)
        return run_with_socks(a);
    if (!path || !(a->unix_path = strdup(path))) {
        create_args_free(a);
        return NULL;
    }
    return run_create(a, create_unix_server_task);
}
