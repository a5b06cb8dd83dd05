/*
 * loop/datagram.c: datagram transports (asyncio's _SelectorDatagramTransport)
 * and create_datagram_endpoint; reading is loop/dgram_read.c's. A failed send
 * or receive is not fatal: the protocol hears it through error_received and
 * the endpoint goes on. A datagram the socket cannot take now waits in the
 * write buffer as a record (lengths, address, payload) until the socket is
 * writable again.
 */
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "coreio/proxy.h"
#include "internal.h"

static ssize_t send_one(cio_transport_t *t, const void *data, size_t len,
                        const struct sockaddr *addr, socklen_t addrlen)
{
    /* A connected endpoint sends without an address. */
    ssize_t n = t->remote ? send(t->fd, data, len, MSG_NOSIGNAL)
                          : sendto(t->fd, data, len, MSG_NOSIGNAL, addr, addrlen);
    if (n > 0)
        cio__transport_traffic(t, 0, (size_t)n);
    return n;
}

int cio__dgram_on_writable(void *arg)
{
    cio_transport_t *t = arg;
    while (!t->lost && t->wlen > 0) {
        cio__dgram_record_t r;
        uint8_t *p = t->wbuf + t->whead;
        memcpy(&r, p, sizeof(r));
        size_t size = sizeof(r) + r.addrlen + r.len;
        assert(size <= t->wlen && t->whead + t->wlen <= t->wcap);
        ssize_t n = send_one(t, p + sizeof(r) + r.addrlen, r.len,
                             r.addrlen ? (struct sockaddr *)(p + sizeof(r)) : NULL, r.addrlen);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        /* Sent, or failed for good: either way this datagram is done. */
        t->whead += size;
        t->wlen -= size;
        t->dgram_bytes -= r.len;
        if (n < 0)
            cio__dgram_report_error(t, -errno);
    }
    if (!t->lost)
        cio__transport_flushed(t);
    return 0;
}

static bool same_address(const struct sockaddr *a, socklen_t alen, const struct sockaddr_storage *b,
                         socklen_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

int cio_transport_sendto(cio_transport_t *t, const void *data, size_t len,
                         const struct sockaddr *addr, socklen_t addrlen)
{
    if (t->kind != CIO__DGRAM || (!data && len) || len > UINT32_MAX ||
        addrlen > sizeof(struct sockaddr_storage))
        return -EINVAL;
    if (addr && t->remote && !same_address(addr, addrlen, t->remote, t->remote_len))
        return -EINVAL; /* asyncio: "Invalid address: must be None or ..." */
    if (!addr && !t->remote)
        return -EDESTADDRREQ;
    if (t->closing)
        return -EPIPE;
    if (t->remote)
        addrlen = 0;
    if (t->wlen == 0) {
        ssize_t n = send_one(t, data, len, addr, addrlen);
        if (n >= 0)
            return 0;
        if (errno != EAGAIN && errno != EINTR) {
            cio__dgram_report_error(t, -errno);
            return 0;
        }
    }
    cio__dgram_record_t r = {.len = (uint32_t)len, .addrlen = addrlen};
    if (cio__transport_buffer_reserve(t, sizeof(r) + addrlen + len) < 0)
        return -ENOMEM; /* nothing was queued: the datagram is not sent */
    cio__transport_buffer_put(t, &r, sizeof(r));
    cio__transport_buffer_put(t, addr, addrlen);
    cio__transport_buffer_put(t, data, len);
    t->dgram_bytes += len;
    if (cio__transport_watch_writes(t) < 0)
        return 0;
    cio__transport_maybe_pause(t);
    return 0;
}

/* ---- create_datagram_endpoint ------------------------------------------------------ */

typedef struct dgram_args {
    cio_loop_t *loop;
    cio_protocol_factory_t factory;
    void *factory_arg;
    cio_datagram_opts_t opts;
    char *strings[6];       /* the copied address strings of opts */
    cio_proxy_opts_t proxy; /* a copy of *opts.proxy, which then points here */
    int sock;               /* use_sock's until the task takes it: closed with us; or -1 */
} dgram_args_t;

static void dgram_args_free(void *arg)
{
    dgram_args_t *a = arg;
    for (int i = 0; i < 6; i++)
        free(a->strings[i]);
    cio__proxy_opts_clear(&a->proxy);
    if (a->sock >= 0) /* the task never ran: the socket was ours all the same */
        close(a->sock);
    free(a);
}

static int unix_address(const char *path, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path))
        return -ENAMETOOLONG;
    strcpy(sun->sun_path, path);
    return 0;
}

/* An AF_UNIX datagram socket bound and/or connected to the paths given. */
static int open_unix(const cio_datagram_opts_t *o, struct sockaddr_storage *remote,
                     socklen_t *remote_len)
{
    struct sockaddr_un sun;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (o->local_path) {
        struct stat st;
        rc = unix_address(o->local_path, &sun);
        if (rc == 0 && stat(o->local_path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(o->local_path);
        if (rc == 0 && bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
            rc = -errno;
    }
    if (rc == 0 && o->remote_path) {
        rc = unix_address(o->remote_path, &sun);
        if (rc == 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
            rc = -errno;
        memcpy(remote, &sun, sizeof(sun));
        *remote_len = sizeof(sun);
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* A socket for @p family, bound to @p local and connected to @p remote if given. */
static int open_inet(const cio_datagram_opts_t *o, int family, const struct addrinfo *local,
                     const struct addrinfo *remote)
{
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, o->proto);
    if (fd < 0)
        return -errno;
    int one = 1, rc = 0;
    if (o->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        rc = -errno;
    if (rc == 0 && o->allow_broadcast &&
        setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) < 0)
        rc = -errno;
    if (rc == 0 && local && bind(fd, local->ai_addr, local->ai_addrlen) < 0)
        rc = -errno;
    if (rc == 0 && remote && connect(fd, remote->ai_addr, remote->ai_addrlen) < 0)
        rc = -errno;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* Try each (local, remote) pair of one family until a socket works. */
static int open_any(const cio_datagram_opts_t *o, struct addrinfo *local, struct addrinfo *remote,
                    struct sockaddr_storage *rsa, socklen_t *rlen)
{
    int rc = -EADDRNOTAVAIL;
    for (struct addrinfo *r = remote ? remote : NULL;; r = r ? r->ai_next : NULL) {
        for (struct addrinfo *l = local;; l = l ? l->ai_next : NULL) {
            int family = r ? r->ai_family : l ? l->ai_family : AF_INET;
            if (!l || !r || l->ai_family == r->ai_family) {
                rc = open_inet(o, family, l, r);
                if (rc >= 0) {
                    if (r) {
                        memcpy(rsa, r->ai_addr, r->ai_addrlen);
                        *rlen = r->ai_addrlen;
                    }
                    return rc;
                }
            }
            if (!l || !l->ai_next)
                break;
        }
        if (!r || !r->ai_next)
            break;
    }
    return rc;
}

/*
 * Wrap @p fd (consumed) in a transport, connected to @p rsa if @p rlen, and
 * wait for connection_made. What can fail comes first: the protocol is made
 * only for a transport, as nothing could tell an orphan one to free itself.
 */
static int attach(dgram_args_t *a, int fd, const struct sockaddr_storage *rsa, socklen_t rlen,
                  void **result)
{
    struct sockaddr_storage *remote = rlen ? malloc(sizeof(*remote)) : NULL;
    cio_future_t *waiter = !rlen || remote ? cio_loop_create_future(a->loop) : NULL;
    cio_transport_t *t = waiter ? cio__transport_alloc(a->loop) : NULL;
    bool proxied = !a->opts.proxy || (t && cio__dgram_proxy_attach(t, a->opts.proxy) == 0);
    cio_protocol_t *p = t && proxied ? a->factory(a->factory_arg) : NULL;
    if (!p || !p->ops) {
        cio__transport_discard(t);
        cio_future_unref(waiter);
        free(remote);
        close(fd);
        return -ENOMEM;
    }
    if (remote) {
        memcpy(remote, rsa, rlen);
        t->remote = remote;
        t->remote_len = rlen;
    }
    struct sockaddr_storage own;
    socklen_t own_len = sizeof(own);
    bool ip = getsockname(fd, (struct sockaddr *)&own, &own_len) == 0 &&
              (own.ss_family == AF_INET || own.ss_family == AF_INET6);
    t->dgram_one = !ip; /* a Unix (or other given) socket's datagrams may exceed 64 KiB */
    cio__transport_start(t, fd, CIO__DGRAM, p, NULL, waiter);
    int rc = cio_await(waiter, result);
    cio_future_unref(waiter);
    if (rc < 0)
        cio_transport_abort(t);
    return rc;
}

static int datagram_task(void *arg, void **result)
{
    dgram_args_t *a = arg;
    cio_datagram_opts_t *o = &a->opts;
    struct addrinfo *local = NULL, *remote = NULL;
    struct sockaddr_storage rsa;
    socklen_t rlen = 0;
    int fd;
    if (o->use_sock) {
        fd = a->sock;
        a->sock = -1;
        int rc = cio__set_nonblocking(fd);
        if (rc < 0) {
            close(fd);
            fd = rc;
        }
    } else if (o->family == AF_UNIX) {
        fd = open_unix(o, &rsa, &rlen);
    } else {
        struct addrinfo hints = {.ai_family = o->family,
                                 .ai_socktype = SOCK_DGRAM,
                                 .ai_protocol = o->proto,
                                 .ai_flags = o->flags};
        fd = 0;
        if (o->remote_host || o->remote_port)
            fd = cio__resolve(a->loop, o->remote_host, o->remote_port, &hints, &remote);
        hints.ai_flags |= AI_PASSIVE;
        if (fd == 0 && (o->local_host || o->local_port))
            fd = cio__resolve(a->loop, o->local_host, o->local_port, &hints, &local);
        if (fd == 0)
            fd = open_any(o, local, remote, &rsa, &rlen);
    }
    if (local)
        freeaddrinfo(local);
    if (remote)
        freeaddrinfo(remote);
    int rc = fd >= 0 ? attach(a, fd, &rsa, rlen, result) : fd;
    dgram_args_free(a);
    return rc;
}

cio_future_t *cio_loop_create_datagram_endpoint(cio_loop_t *loop, cio_protocol_factory_t factory,
                                                void *factory_arg, const cio_datagram_opts_t *opts)
{
    if (!loop || !factory || !opts || atomic_load(&loop->closed))
        return NULL;
    bool paths = opts->local_path || opts->remote_path;
    bool inet = opts->local_host || opts->local_port || opts->remote_host || opts->remote_port;
    if (!opts->use_sock && (paths ? opts->family != AF_UNIX || inet : !inet))
        return NULL;
    if (!cio__dgram_proxy_opts_valid(opts->proxy))
        return NULL;
    dgram_args_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->loop = loop;
    a->factory = factory;
    a->factory_arg = factory_arg;
    a->opts = *opts;
    a->sock = -1;
    const char **fields[6] = {&a->opts.local_host,  &a->opts.local_port, &a->opts.remote_host,
                              &a->opts.remote_port, &a->opts.local_path, &a->opts.remote_path};
    for (int i = 0; i < 6; i++) {
        if (*fields[i] && !(a->strings[i] = strdup(*fields[i]))) {
            dgram_args_free(a);
            return NULL;
        }
        *fields[i] = a->strings[i];
    }
    if (opts->proxy && cio__proxy_opts_copy(&a->proxy, opts->proxy) < 0) {
        dgram_args_free(a);
        return NULL;
    }
    a->opts.proxy = opts->proxy ? &a->proxy : NULL;
    cio_future_t *f = cio__spawn(loop, datagram_task, a, dgram_args_free);
    if (f && opts->use_sock) /* the task has not run yet: from now on the socket is ours */
        a->sock = opts->sock;
    return f;
}
