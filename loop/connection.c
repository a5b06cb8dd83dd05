/*
 * loop/connection.c: opening stream connections. create_connection runs as an
 * internal task: resolve, then connect to each address in turn, or, with a
 * happy-eyeballs delay, race them as RFC 8305 and asyncio's staggered_race do:
 * a new attempt starts when the delay passes or the previous attempt fails,
 * and the first to connect wins while the rest are cancelled.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "internal.h"

typedef struct conn_args {
    cio_loop_t *loop;
    cio_protocol_factory_t factory;
    void *factory_arg;
    cio_connection_opts_t opts;
    char *host, *port, *local_host, *local_port, *path, *server_hostname;
    bool server_side; /* connect_accepted_socket: the TLS server's side */
    int sock;         /* the caller's socket until the task takes it: closed with us; or -1 */
} conn_args_t;

static void conn_args_free(void *arg)
{
    conn_args_t *a = arg;
    free(a->host);
    free(a->port);
    free(a->local_host);
    free(a->local_port);
    free(a->path);
    free(a->server_hostname);
    SSL_CTX_free(a->opts.ssl);
    SSL_SESSION_free(a->opts.ssl_session);
    if (a->sock >= 0) /* the task never ran: the socket was ours all the same */
        close(a->sock);
    free(a);
}

static int set_done(void *arg)
{
    cio_future_t *fut = arg;
    if (!cio_future_done(fut))
        cio_future_set_result(fut, NULL);
    return 0;
}

/*
 * Inside a task: wait until @p fd, watched on behalf of @p owner (NULL for a
 * fresh socket of the caller's), is ready for @p dir (CIO__IO_READ/WRITE).
 */
int cio__await_fd(cio_loop_t *loop, int fd, void *owner, int dir)
{
    cio_future_t *fut = cio_loop_create_future(loop);
    if (!fut)
        return -ENOMEM;
    void *who = owner ? owner : fut;
    int rc = cio__io_start(loop, fd, who, dir, set_done, fut);
    if (rc == 0)
        rc = cio_await(fut, NULL);
    cio__io_stop(loop, fd, who, dir);
    cio_future_unref(fut);
    return rc;
}

/* Inside a task: a non-blocking connect of @p fd to @p addr, to its end. */
int cio__connect_fd(cio_loop_t *loop, int fd, const struct sockaddr *addr, socklen_t len)
{
    if (connect(fd, addr, len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EAGAIN)
        return -errno;
    int rc = cio__await_fd(loop, fd, NULL, CIO__IO_WRITE);
    if (rc < 0)
        return rc;
    int err = 0;
    socklen_t elen = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        return -errno;
    return -err;
}

/* Bind @p fd to the first local address of its family; -EADDRNOTAVAIL if none. */
static int bind_local(int fd, int family, const struct addrinfo *local)
{
    int err = -EADDRNOTAVAIL;
    for (const struct addrinfo *ai = local; ai; ai = ai->ai_next) {
        if (ai->ai_family != family)
            continue;
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            return 0;
        err = -errno;
    }
    return err;
}

/* One attempt: a socket for @p ai, bound and connected. Returns the fd or an error. */
static int try_connect(cio_loop_t *loop, const struct addrinfo *ai, const struct addrinfo *local)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    int rc = local ? bind_local(fd, ai->ai_family, local) : 0;
    if (rc == 0)
        rc = cio__connect_fd(loop, fd, ai->ai_addr, ai->ai_addrlen);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* Collects the failures into asyncio's "Multiple exceptions" message. */
typedef struct failures {
    char text[1024];
    size_t len;
    int count;
    int last;
} failures_t;

static void note_failure(failures_t *f, const struct addrinfo *ai, int err)
{
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
    getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), serv, sizeof(serv),
                NI_NUMERICHOST | NI_NUMERICSERV);
    if (f->len < sizeof(f->text))
        f->len += (size_t)snprintf(f->text + f->len, sizeof(f->text) - f->len,
                                   "%s[%s] connect to ('%s', %s) failed", f->count ? "; " : "",
                                   cio_err_name(err), host, serv);
    f->count++;
    f->last = err;
}

/* ---- racing (happy eyeballs) ------------------------------------------------ */

typedef struct race {
    cio_loop_t *loop;
    const struct addrinfo *local;
    int winner; /* the connected fd, or -1 */
    size_t finished;
    failures_t *failures;
    cio_future_t *wake; /* settled whenever an attempt ends */
} race_t;

typedef struct attempt {
    race_t *race;
    const struct addrinfo *ai;
} attempt_t;

static int attempt_task(void *arg, void **result)
{
    attempt_t *at = arg;
    race_t *r = at->race;
    int fd = try_connect(r->loop, at->ai, r->local);
    if (fd >= 0 && r->winner < 0)
        r->winner = fd;
    else if (fd >= 0)
        close(fd); /* lost the race */
    else if (fd != -ECANCELED)
        note_failure(r->failures, at->ai, fd);
    r->finished++;
    if (r->wake && !cio_future_done(r->wake))
        cio_future_set_result(r->wake, NULL);
    return 0;
}

/* Start attempts @p delay apart until one connects or all have failed. */
static int race_connect(cio_loop_t *loop, const struct addrinfo **addrs, size_t n,
                        const struct addrinfo *local, double delay, failures_t *fails)
{
    race_t r = {.loop = loop, .local = local, .winner = -1, .failures = fails};
    attempt_t *at = calloc(n, sizeof(*at));
    cio_future_t **futs = calloc(n, sizeof(*futs));
    size_t started = 0;
    int rc = at && futs ? 0 : -ENOMEM;
    /* Each pass starts the next attempt: the delay passed or one failed. */
    while (rc == 0 && r.winner < 0 && r.finished < n) {
        if (started < n) {
            at[started] = (attempt_t){&r, addrs[started]};
            cio_task_t *t = cio_task_new(loop, attempt_task, &at[started], NULL);
            if (!t) {
                rc = -ENOMEM;
                break;
            }
            futs[started++] = cio_task_future(t);
        }
        r.wake = cio_loop_create_future(loop);
        cio_future_t *w = !r.wake       ? NULL
                          : started < n ? cio_wait_for(r.wake, delay)
                                        : cio_future_ref(r.wake);
        rc = w ? cio_await(w, NULL) : -ENOMEM;
        cio_future_unref(w);
        cio_future_unref(r.wake);
        r.wake = NULL;
        if (rc == -ETIMEDOUT)
            rc = 0;
    }
    /* Stop the others and wait for them, so every losing socket is closed. */
    for (size_t i = 0; i < started; i++)
        cio_future_cancel(futs[i], NULL);
    cio_future_t *all =
        started ? cio_gather(loop, futs, started, &(cio_gather_opts_t){true}) : NULL;
    while (all && !cio_future_done(all))
        cio_await(all, NULL); /* a cancellation of ours must not leave them running */
    cio_future_unref(all);
    for (size_t i = 0; i < started; i++)
        cio_future_unref(futs[i]);
    free(futs);
    free(at);
    if (rc < 0) {
        if (r.winner >= 0)
            close(r.winner);
        return rc;
    }
    return r.winner >= 0 ? r.winner : (fails->count ? fails->last : -ECONNREFUSED);
}

/* RFC 8305's interleaving: @p first of the first family, then alternate. */
static size_t order_addresses(struct addrinfo *res, const struct addrinfo **out, int first)
{
    size_t n = 0, na = 0, nb = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        n++;
    const struct addrinfo **a = calloc(n ? n : 1, sizeof(*a));
    const struct addrinfo **b = calloc(n ? n : 1, sizeof(*b));
    if (!a || !b) {
        free(a);
        free(b);
        n = 0;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
            out[n++] = ai;
        return n;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family == res->ai_family)
            a[na++] = ai;
        else
            b[nb++] = ai;
    }
    size_t k = 0, ia = 0, ib = 0;
    for (int i = 0; i < first - 1 && ia < na; i++)
        out[k++] = a[ia++];
    while (ia < na || ib < nb) {
        if (ia < na)
            out[k++] = a[ia++];
        if (ib < nb)
            out[k++] = b[ib++];
    }
    free(a);
    free(b);
    return k;
}

/* Connect to one of @p res: in turn, or raced. Returns the fd or an error. */
static int connect_any(cio_loop_t *loop, struct addrinfo *res, const struct addrinfo *local,
                       const cio_connection_opts_t *o)
{
    failures_t fails = {.last = -ECONNREFUSED};
    int fd = -ENOENT;
    if (o->happy_eyeballs_delay > 0) {
        size_t n = 0;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
            n++;
        const struct addrinfo **addrs = calloc(n ? n : 1, sizeof(*addrs));
        if (!addrs)
            return -ENOMEM;
        n = order_addresses(res, addrs, o->interleave > 0 ? o->interleave : 1);
        fd = race_connect(loop, addrs, n, local, o->happy_eyeballs_delay, &fails);
        free(addrs);
    } else {
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            fd = try_connect(loop, ai, local);
            if (fd >= 0 || fd == -ECANCELED)
                break;
            note_failure(&fails, ai, fd);
        }
    }
    if (fd < 0 && fails.count > 1) {
        char message[sizeof(fails.text) + 32];
        snprintf(message, sizeof(message), "Multiple exceptions: %s", fails.text);
        cio__task_set_error_message(message);
    } else if (fd < 0 && fails.count == 1) {
        cio__task_set_error_message(fails.text);
    }
    return fd;
}

/* With ssl=, the transport's TLS layer; the server's name is checked against the host's. */
static int attach_tls(conn_args_t *a, cio_transport_t *t)
{
    if (!t || !a->opts.ssl)
        return 0;
    cio__tls_params_t p = {.ctx = a->opts.ssl,
                           .server_side = a->server_side,
                           .hostname = a->server_hostname ? a->server_hostname : a->host,
                           .handshake_timeout = a->opts.ssl_handshake_timeout,
                           .shutdown_timeout = a->opts.ssl_shutdown_timeout,
                           .session = a->opts.ssl_session};
    return cio__tls_attach(t, &p);
}

/* Attach a protocol to the connected @p fd and wait for connection_made. */
static int attach(conn_args_t *a, int fd, void **result)
{
    /* What can fail comes first: the protocol is made only for a transport. */
    cio_future_t *waiter = cio_loop_create_future(a->loop);
    cio_transport_t *t = waiter ? cio__transport_alloc(a->loop) : NULL;
    cio_protocol_t *p = t && attach_tls(a, t) == 0 ? a->factory(a->factory_arg) : NULL;
    if (!p || !p->ops) {
        cio__transport_discard(t);
        cio_future_unref(waiter);
        close(fd);
        return -ENOMEM;
    }
    cio__transport_start(t, fd, CIO__STREAM, p, NULL, waiter);
    int rc = cio_await(waiter, result);
    cio_future_unref(waiter);
    if (rc < 0)
        cio_transport_abort(t);
    return rc;
}

/* The caller's socket (use_sock), non-blocking: the descriptor, or -errno after closing it. */
static int take_sock(conn_args_t *a)
{
    int fd = a->sock, rc = cio__set_nonblocking(fd);
    a->sock = -1;
    if (rc < 0)
        close(fd);
    return rc < 0 ? rc : fd;
}

static int create_connection_task(void *arg, void **result)
{
    conn_args_t *a = arg;
    struct addrinfo hints = {.ai_family = a->opts.family,
                             .ai_socktype = SOCK_STREAM,
                             .ai_protocol = a->opts.proto,
                             .ai_flags = a->opts.flags};
    struct addrinfo *res = NULL, *local = NULL;
    int rc = 0;
    if (a->opts.use_sock) {
        rc = take_sock(a);
    } else {
        rc = cio__resolve(a->loop, a->host, a->port, &hints, &res);
        if (rc == 0 && (a->local_host || a->local_port)) {
            hints.ai_flags |= AI_PASSIVE;
            rc = cio__resolve(a->loop, a->local_host, a->local_port, &hints, &local);
        }
        if (rc == 0)
            rc = connect_any(a->loop, res, local, &a->opts);
    }
    if (rc >= 0)
        rc = attach(a, rc, result);
    if (res)
        freeaddrinfo(res);
    if (local)
        freeaddrinfo(local);
    conn_args_free(a);
    return rc;
}

static conn_args_t *conn_args_new(cio_loop_t *loop, cio_protocol_factory_t factory, void *arg)
{
    if (!loop || !factory || atomic_load(&loop->closed))
        return NULL;
    conn_args_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->loop = loop;
    a->sock = -1;
    a->factory = factory;
    a->factory_arg = arg;
    return a;
}

static cio_future_t *start(conn_args_t *a, cio_task_fn fn)
{
    return cio__spawn(a->loop, fn, a, conn_args_free);
}

/* As start(), for a task that takes the caller's socket @p fd: from the moment
 * the future exists the socket is the loop's (on NULL it is still the caller's). */
static cio_future_t *start_with_sock(conn_args_t *a, cio_task_fn fn, int fd)
{
    cio_future_t *f = start(a, fn);
    if (f) /* the task has not run yet: it runs on the loop, later */
        a->sock = fd;
    return f;
}

static bool dup_opt(char **dst, const char *src)
{
    return !src || (*dst = strdup(src));
}

static bool tls_opts_valid(const cio_connection_opts_t *o)
{
    return !o || (o->ssl_handshake_timeout >= 0 && o->ssl_handshake_timeout < 1e9 &&
                  o->ssl_shutdown_timeout >= 0 && o->ssl_shutdown_timeout < 1e9 &&
                  (o->ssl || (!o->server_hostname && !o->ssl_session)));
}

/* Keep the TLS options of @p o (NULL: none) for a Unix or accepted-socket connection. */
static bool take_tls_opts(conn_args_t *a, const cio_connection_opts_t *o)
{
    if (!o)
        return true;
    a->opts.ssl = o->ssl;
    if (o->ssl)
        SSL_CTX_up_ref(o->ssl);
    a->opts.ssl_session = o->ssl_session;
    if (o->ssl_session)
        SSL_SESSION_up_ref(o->ssl_session);
    a->opts.ssl_handshake_timeout = o->ssl_handshake_timeout;
    a->opts.ssl_shutdown_timeout = o->ssl_shutdown_timeout;
    return dup_opt(&a->server_hostname, o->server_hostname);
}

cio_future_t *cio_loop_create_connection(cio_loop_t *loop, cio_protocol_factory_t factory,
                                         void *factory_arg, const char *host, const char *port,
                                         const cio_connection_opts_t *opts)
{
    if (opts && !(opts->happy_eyeballs_delay >= 0))
        return NULL; /* negative or NaN */
    if (!tls_opts_valid(opts))
        return NULL;
    if (!(opts && opts->use_sock) && !host && !port)
        return NULL;
    conn_args_t *a = conn_args_new(loop, factory, factory_arg);
    if (!a)
        return NULL;
    if (opts)
        a->opts = *opts;
    if (a->opts.ssl) /* the caller may free its context (and session) at once */
        SSL_CTX_up_ref(a->opts.ssl);
    if (a->opts.ssl_session)
        SSL_SESSION_up_ref(a->opts.ssl_session);
    if (!dup_opt(&a->host, host) || !dup_opt(&a->port, port) ||
        !dup_opt(&a->local_host, a->opts.local_host) ||
        !dup_opt(&a->local_port, a->opts.local_port) ||
        !dup_opt(&a->server_hostname, a->opts.server_hostname)) {
        conn_args_free(a);
        return NULL;
    }
    a->opts.local_host = a->opts.local_port = a->opts.server_hostname = NULL;
    if (a->opts.use_sock)
        return start_with_sock(a, create_connection_task, a->opts.sock);
    return start(a, create_connection_task);
}

static int unix_connection_task(void *arg, void **result)
{
    conn_args_t *a = arg;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int rc;
    if (strlen(a->path) >= sizeof(sun.sun_path)) {
        rc = -ENAMETOOLONG;
    } else {
        strcpy(sun.sun_path, a->path);
        rc = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (rc < 0) {
            rc = -errno;
        } else {
            int fd = rc;
            rc = cio__connect_fd(a->loop, fd, (struct sockaddr *)&sun, sizeof(sun));
            if (rc < 0)
                close(fd);
            else
                rc = attach(a, fd, result);
        }
    }
    conn_args_free(a);
    return rc;
}

cio_future_t *cio_loop_create_unix_connection(cio_loop_t *loop, cio_protocol_factory_t factory,
                                              void *factory_arg, const char *path,
                                              const cio_connection_opts_t *opts)
{
    if (!path || !tls_opts_valid(opts))
        return NULL;
    conn_args_t *a = conn_args_new(loop, factory, factory_arg);
    if (!a)
        return NULL;
    if (!(a->path = strdup(path)) || !take_tls_opts(a, opts)) {
        conn_args_free(a);
        return NULL;
    }
    return start(a, unix_connection_task);
}

static int accepted_task(void *arg, void **result)
{
    conn_args_t *a = arg;
    int fd = a->sock;
    a->sock = -1;
    int rc = attach(a, fd, result);
    conn_args_free(a);
    return rc;
}

cio_future_t *cio_loop_connect_accepted_socket(cio_loop_t *loop, cio_protocol_factory_t factory,
                                               void *factory_arg, int fd,
                                               const cio_connection_opts_t *opts)
{
    if (fd < 0 || !tls_opts_valid(opts) || (opts && (opts->server_hostname || opts->ssl_session)) ||
        cio__set_nonblocking(fd) < 0)
        return NULL;
    conn_args_t *a = conn_args_new(loop, factory, factory_arg);
    if (!a)
        return NULL;
    if (!take_tls_opts(a, opts)) {
        conn_args_free(a);
        return NULL;
    }
    a->server_side = true;
    return start_with_sock(a, accepted_task, fd);
}
