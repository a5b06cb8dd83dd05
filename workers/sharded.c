/*
 * workers/sharded.c: one service listening across every worker.
 *
 * Each worker keeps the service's connections in a cio_server_t on its own
 * loop. In REUSEPORT mode that server also owns the worker's listening socket
 * (all bound with SO_REUSEPORT to one address, worker 0 first so that port 0
 * becomes one real port for all). In HANDOFF mode the workers' servers have no
 * socket: worker 0 holds a second server, the acceptor, whose accepted sockets
 * go to the worker with the fewest connections, by mailbox.
 *
 * Closing is careful not to reset connections the kernel has completed but
 * nobody accepted yet (closing a listener with a non-empty accept queue resets
 * them): first the listeners stop taking new ones (a socket filter drops
 * incoming SYNs; a Unix socket's path is unlinked), then the loops go on
 * accepting until the queues are empty, and only then do the sockets close.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "coreio/proxy.h"
#include "coreio/sharded.h"
#include "internal.h"

#define SETTLE_DEFAULT 0.05 /* seconds listeners keep accepting once new SYNs are dropped */
#define SETTLE_ROUNDS  40   /* settle periods to wait for an accept queue to empty */
#define GIVEN_MAX      16   /* sockets one worker may be given (one per address family, say) */

typedef struct shard {
    struct cio_sharded_s *set;
    size_t index;
    cio_loop_t *loop;
    cio_server_t *server;      /* stream: this worker's connections */
    cio_server_t *acceptor;    /* HANDOFF, worker 0: the one listening socket */
    cio_transport_t *endpoint; /* datagram: this worker's endpoint */
    _Atomic size_t inflight;   /* HANDOFF: connections on their way to this worker */
    bool adopted;              /* our socket is a copy of the one of the server we took over */
    bool handed_over;          /* our socket lives on elsewhere: close ours without draining */
} shard_t;

struct cio_sharded_s {
    cio_workers_t *w;
    cio_protocol_factory_t factory;
    void *factory_arg;
    cio_sharded_opts_t o;
    char *host, *port, *path;
    shard_t *shards;
    size_t n;
    bool dgram;
    bool closing;
    /* While both are open: the server that took our sockets over (successor)
     * or whose sockets we took (predecessor). Owner's thread only. */
    struct cio_sharded_s *twin;
    bool twin_is_successor;
    _Atomic int refs; /* the owner's, plus one per message cio_sharded_free() sends */
    int *socks;       /* cio_sharded_opts_t.socks, copied; the caller owns the descriptors */
    size_t nsocks;
    cio_proxy_opts_t proxy; /* o.proxy points here; its ranges are ours */
    void **retired;         /* ranges a reconfigure replaced, freed with the set */
    size_t nretired;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    ino_t path_ino; /* the Unix socket file we made, to unlink it only if still ours */
};

static void set_unref(cio_sharded_t *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(s->host);
    free(s->port);
    free(s->path);
    free(s->shards);
    free(s->socks);
    free((void *)s->proxy.trusted);
    for (size_t i = 0; i < s->nretired; i++)
        free(s->retired[i]);
    free(s->retired);
    SSL_CTX_free(s->o.ssl);
    free(s);
}

/* ---- hand-off ------------------------------------------------------------------- */

typedef struct handoff {
    shard_t *to;
    int fd;
} handoff_t;

/* On the receiving worker: serve the connection. */
static int adopt(void *arg)
{
    handoff_t *h = arg;
    int rc = cio_server_serve_accepted(h->to->server, h->fd);
    atomic_fetch_sub_explicit(&h->to->inflight, 1, memory_order_relaxed);
    free(h);
    return rc == CIO_ECLOSED ? 0 : rc;
}

/* The receiving loop closed first: the connection goes with it. */
static int adopt_cancelled(void *arg)
{
    handoff_t *h = arg;
    close(h->fd);
    atomic_fetch_sub_explicit(&h->to->inflight, 1, memory_order_relaxed);
    free(h);
    return 0;
}

/* The shard serving the fewest connections, counting those on their way. */
static shard_t *least_loaded(cio_sharded_t *s)
{
    shard_t *best = &s->shards[0];
    size_t best_load = SIZE_MAX;
    for (size_t i = 0; i < s->n; i++) {
        shard_t *sh = &s->shards[i];
        size_t load = cio_server_active_connections(sh->server) +
                      atomic_load_explicit(&sh->inflight, memory_order_relaxed);
        if (load < best_load) {
            best = sh;
            best_load = load;
        }
    }
    return best;
}

/* The acceptor's on_accept, on worker 0: pass @p fd to the least-loaded worker. */
static int hand_off(void *arg, int fd)
{
    cio_sharded_t *s = arg;
    shard_t *to = least_loaded(s);
    if (to->index == 0)
        return cio_server_serve_accepted(to->server, fd);
    handoff_t *h = malloc(sizeof(*h));
    if (!h) {
        close(fd);
        return -ENOMEM;
    }
    *h = (handoff_t){.to = to, .fd = fd};
    atomic_fetch_add_explicit(&to->inflight, 1, memory_order_relaxed);
    int rc = cio__call_soon_threadsafe_owned(to->loop, adopt, adopt_cancelled, h);
    if (rc < 0)
        adopt_cancelled(h);
    return rc;
}

/* ---- opening, on each worker ------------------------------------------------------- */

/* Note the address the service got (worker 0, first socket). */
static void note_sockname(cio_sharded_t *s, int fd)
{
    s->addrlen = sizeof(s->addr);
    if (getsockname(fd, (struct sockaddr *)&s->addr, &s->addrlen) < 0)
        s->addrlen = 0;
}

static int first_socket(const cio_server_t *server)
{
    int fd = -1;
    return cio_server_sockets(server, &fd, 1) ? fd : -1;
}

static cio_server_opts_t server_opts(const cio_sharded_t *s)
{
    return (cio_server_opts_t){.family = s->o.family,
                               .backlog = s->o.backlog,
                               .idle_timeout = s->o.idle_timeout,
                               .write_high = s->o.write_high,
                               .write_low = s->o.write_low,
                               .ssl = s->o.ssl,
                               .ssl_handshake_timeout = s->o.ssl_handshake_timeout,
                               .ssl_shutdown_timeout = s->o.ssl_shutdown_timeout,
                               .proxy = s->o.proxy};
}

/* Await @p fut and return its result through @p out. */
static int await_into(cio_future_t *fut, void **out)
{
    if (!fut)
        return -ENOMEM;
    int rc = cio_await(fut, out);
    cio_future_unref(fut);
    return rc;
}

/* The listening sockets @p sh serves into @p fds (at most @p max); their number. */
static size_t shard_sockets(const shard_t *sh, int *fds, size_t max)
{
    const cio_server_t *server = sh->acceptor ? sh->acceptor : sh->server;
    cio_extra_info_t info;
    if (sh->endpoint && max && cio_transport_get_extra_info(sh->endpoint, "socket", &info) == 0) {
        fds[0] = info.fd;
        return 1;
    }
    return server ? cio_server_sockets(server, fds, max) : 0;
}

/* Copies of @p n descriptors @p from into @p fds (all or none); 0 or -errno. */
static int dup_all(const int *from, size_t n, int *fds)
{
    for (size_t i = 0; i < n; i++) {
        if ((fds[i] = fcntl(from[i], F_DUPFD_CLOEXEC, 0)) < 0) {
            int err = -errno;
            while (i-- > 0)
                close(fds[i]);
            return err;
        }
    }
    return 0;
}

/* The shard of the server we take over that sits on @p sh's worker, or NULL. */
static shard_t *adoptee(const shard_t *sh)
{
    const cio_sharded_t *from = sh->set->o.adopt;
    return from && sh->index < from->n ? &from->shards[sh->index] : NULL;
}

/*
 * The sockets @p sh serves instead of binding its own, copies into @p fds
 * (GIVEN_MAX): the caller's group for this worker (cio_sharded_opts_t.socks),
 * or every socket of the adopted server's shard; *@p n is 0 to bind. 0 or
 * -errno when a copy fails. On the shard's own worker.
 */
static int given_sockets(shard_t *sh, int *fds, size_t *n)
{
    const cio_sharded_t *s = sh->set;
    int mine[GIVEN_MAX];
    const int *from = mine;
    *n = 0;
    if (s->nsocks) {
        size_t per = s->o.socks_per_worker ? s->o.socks_per_worker : 1;
        from = s->socks + (sh->index % (s->nsocks / per)) * per;
        *n = per;
    } else if (adoptee(sh)) {
        *n = shard_sockets(adoptee(sh), mine, GIVEN_MAX);
        sh->adopted = *n > 0;
    }
    int rc = dup_all(from, *n, fds);
    if (rc < 0)
        return rc;
    /* A socket someone else keeps is never filtered by our close (the next server
     * would inherit the filter); one an earlier owner left filtered is cleared. */
    sh->handed_over = *n && s->o.socks_shared;
    int unused = 0; /* the kernel reads an int before it looks at the option */
    for (size_t i = 0; !sh->adopted && i < *n; i++)
        setsockopt(fds[i], SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof(unused));
    return 0;
}

/* Serve the @p n sockets @p fds with the options @p o (one as sock, more as socks). */
static void use_sockets(cio_server_opts_t *o, int *fds, size_t n)
{
    o->use_sock = n > 0;
    o->sock = n == 1 ? fds[0] : -1;
    o->socks = n > 1 ? fds : NULL;
    o->nsocks = n > 1 ? n : 0;
}

static int open_dgram(shard_t *sh)
{
    cio_sharded_t *s = sh->set;
    cio_datagram_opts_t o = {.local_host = s->host,
                             .local_port = s->port,
                             .family = s->o.family,
                             .reuse_port = true,
                             .proxy = s->o.proxy};
    int fds[GIVEN_MAX];
    size_t n;
    int rc = given_sockets(sh, fds, &n);
    for (size_t i = 1; i < n; i++) /* an endpoint has one socket (a server may have more) */
        close(fds[i]);
    if (rc < 0)
        return rc;
    if (n) {
        o.use_sock = true;
        o.sock = fds[0];
        o.local_host = o.local_port = NULL;
    }
    void *t = NULL;
    rc =
        await_into(cio_loop_create_datagram_endpoint(sh->loop, s->factory, s->factory_arg, &o), &t);
    sh->endpoint = t;
    if (rc == 0 && sh->index == 0) {
        cio_extra_info_t info;
        if (cio_transport_get_extra_info(sh->endpoint, "socket", &info) == 0)
            note_sockname(s, info.fd);
    }
    return rc;
}

/* REUSEPORT: this worker's own listening socket and its connections. */
static int open_reuseport(shard_t *sh)
{
    cio_sharded_t *s = sh->set;
    cio_server_opts_t o = server_opts(s);
    o.reuse_port = true;
    int fds[GIVEN_MAX];
    size_t n;
    int rc = given_sockets(sh, fds, &n);
    if (rc < 0)
        return rc;
    use_sockets(&o, fds, n);
    void *server = NULL;
    rc = await_into(cio_loop_create_server(sh->loop, s->factory, s->factory_arg,
                                           o.use_sock ? NULL : s->host, o.use_sock ? NULL : s->port,
                                           &o),
                    &server);
    sh->server = server;
    if (rc == 0 && sh->index == 0)
        note_sockname(s, first_socket(sh->server));
    return rc;
}

/* HANDOFF: a server without a socket, for the connections handed to this worker. */
static int open_target(shard_t *sh)
{
    cio_sharded_t *s = sh->set;
    cio_server_opts_t o = server_opts(s);
    o.use_sock = true;
    o.sock = -1;
    void *server = NULL;
    int rc = await_into(
        cio_loop_create_server(sh->loop, s->factory, s->factory_arg, NULL, NULL, &o), &server);
    sh->server = server;
    return rc;
}

/* HANDOFF, worker 0, once every target exists: the one listening socket. */
static int open_acceptor(shard_t *sh)
{
    cio_sharded_t *s = sh->set;
    /* SO_REUSEPORT as in REUSEPORT mode, so a replacement can bind beside it. */
    cio_server_opts_t o = {.family = s->o.family,
                           .backlog = s->o.backlog,
                           .reuse_port = !s->path,
                           .on_accept = hand_off,
                           .on_accept_arg = s};
    int fds[GIVEN_MAX];
    size_t n;
    int rc = given_sockets(sh, fds, &n);
    if (rc < 0)
        return rc;
    use_sockets(&o, fds, n);
    cio_future_t *fut =
        s->path && !o.use_sock
            ? cio_loop_create_unix_server(sh->loop, NULL, NULL, s->path, &o)
            : cio_loop_create_server(sh->loop, NULL, NULL, o.use_sock ? NULL : s->host,
                                     o.use_sock ? NULL : s->port, &o);
    void *server = NULL;
    rc = await_into(fut, &server);
    sh->acceptor = server;
    struct stat st;
    if (rc == 0 && sh->adopted)
        s->path_ino = s->o.adopt->path_ino; /* the file stays the one we took over */
    else if (rc == 0 && s->path && stat(s->path, &st) == 0)
        s->path_ino = st.st_ino;
    if (rc == 0)
        note_sockname(s, first_socket(sh->acceptor));
    return rc;
}

static int open_shard_task(void *arg, void **result)
{
    shard_t *sh = arg;
    if (sh->set->dgram)
        return open_dgram(sh);
    return sh->set->o.balance == CIO_BALANCE_REUSEPORT ? open_reuseport(sh) : open_target(sh);
}

static int open_acceptor_task(void *arg, void **result)
{
    return open_acceptor(arg);
}

/* ---- closing, on each worker ---------------------------------------------------------- */

/* Refuse new connections (TCP: drop SYNs that carry no ACK) or datagrams. */
static void stop_intake(int fd, bool dgram)
{
    static struct sock_filter drop_syn[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),          /* the TCP header's flags */
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12),       /* SYN | ACK */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 0, 1), /* a SYN alone opens a connection */
        BPF_STMT(BPF_RET | BPF_K, 0),
        BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
    };
    static struct sock_filter drop_all[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
    struct sock_fprog prog =
        dgram ? (struct sock_fprog){1, drop_all}
              : (struct sock_fprog){sizeof(drop_syn) / sizeof(drop_syn[0]), drop_syn};
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
        cio__log(CIO_LOG_WARNING, "sharded server: cannot filter socket %d: %s", fd,
                 cio_strerror(-errno));
}

/* Connections the kernel completed on listening socket @p fd and nobody accepted yet. */
static unsigned queued(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return 0;           /* not TCP: the settle period is all there is */
    return ti.tcpi_unacked; /* on a listener: the accept queue's length */
}

/* Stop @p server's intake, let the loop accept what is queued, then close it. */
static void drain_listener(cio_sharded_t *s, cio_server_t *server)
{
    int fds[16];
    size_t n = cio_server_sockets(server, fds, 16);
    if (n > 16)
        n = 16;
    for (size_t i = 0; i < n; i++)
        stop_intake(fds[i], false);
    /* A replacement may have bound the path meanwhile (a reload): leave its file. */
    struct stat st;
    if (s->path && stat(s->path, &st) == 0 && st.st_ino == s->path_ino)
        unlink(s->path);
    double settle = s->o.drain_settle > 0 ? s->o.drain_settle : SETTLE_DEFAULT;
    for (int round = 0; round < SETTLE_ROUNDS; round++) {
        cio_sleep(settle); /* the loop accepts meanwhile */
        unsigned left = 0;
        for (size_t i = 0; i < n; i++)
            left += queued(fds[i]);
        if (left == 0)
            break;
    }
    cio_server_close(server);
}

static int close_shard_task(void *arg, void **result)
{
    shard_t *sh = arg;
    cio_sharded_t *s = sh->set;
    if (sh->handed_over) {
        /* The sockets live on in the server that took them: only let go of ours. */
        if (sh->endpoint)
            cio_transport_close(sh->endpoint);
        sh->endpoint = NULL;
        if (sh->acceptor || sh->server)
            cio_server_close(sh->acceptor ? sh->acceptor : sh->server);
        return 0;
    }
    if (sh->endpoint) {
        cio_extra_info_t info;
        if (cio_transport_get_extra_info(sh->endpoint, "socket", &info) == 0)
            stop_intake(info.fd, true);
        cio_sleep(s->o.drain_settle > 0 ? s->o.drain_settle : SETTLE_DEFAULT);
        cio_transport_close(sh->endpoint);
        sh->endpoint = NULL;
    }
    if (sh->acceptor)
        drain_listener(s, sh->acceptor);
    else if (sh->server && s->o.balance == CIO_BALANCE_REUSEPORT)
        drain_listener(s, sh->server);
    return 0;
}

/* HANDOFF: once nothing is on its way, the target servers close too. */
static int close_target_task(void *arg, void **result)
{
    shard_t *sh = arg;
    cio_server_close(sh->server);
    return 0;
}

static int wait_closed_task(void *arg, void **result)
{
    shard_t *sh = arg;
    if (!sh->server)
        return 0;
    return await_into(cio_server_wait_closed(sh->server), NULL);
}

/* ---- fan-out from the owner's loop ---------------------------------------------- */

/*
 * Run @p fn on shards [from, to) at once and wait for all; the first error
 * wins. A cancellation ends the wait at once, as it ends asyncio's gather: the
 * caller (a drain that timed out, say) must not go on waiting for the other
 * shards, whose jobs run to their end on their own.
 */
static int on_shards(cio_sharded_t *s, size_t from, size_t to, cio_task_fn fn)
{
    if (from == to)
        return 0;
    cio_future_t **futs = calloc(to - from, sizeof(*futs));
    if (!futs)
        return -ENOMEM;
    for (size_t i = from; i < to; i++)
        futs[i - from] = cio_workers_submit(s->w, i, fn, &s->shards[i]);
    int rc = 0;
    for (size_t i = from; i < to; i++) {
        cio_future_t *f = futs[i - from];
        if (rc != -ECANCELED) {
            int r = f ? cio_await(f, NULL) : -ENOMEM;
            if (r < 0 && (rc == 0 || r == -ECANCELED))
                rc = r;
        }
        cio_future_unref(f);
    }
    free(futs);
    return rc;
}

/* Free what each worker opened, without ceremony (a failed open, or free before close). */
static int teardown_shard(void *arg)
{
    shard_t *sh = arg;
    cio_server_free(sh->acceptor);
    cio_server_free(sh->server);
    if (sh->endpoint)
        cio_transport_close(sh->endpoint);
    sh->acceptor = sh->server = NULL;
    sh->endpoint = NULL;
    set_unref(sh->set);
    return 0;
}

/* The worker's loop closed first: it frees its servers itself. */
static int teardown_dropped(void *arg)
{
    shard_t *sh = arg;
    set_unref(sh->set);
    return 0;
}

/* Ask every worker to free its part. */
static void teardown(cio_sharded_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
        if (cio__call_soon_threadsafe_owned(s->shards[i].loop, teardown_shard, teardown_dropped,
                                            &s->shards[i]) < 0)
            set_unref(s);
    }
}

/* Port "0" (or a service name) becomes the number worker 0 was given. */
static int fix_port(cio_sharded_t *s)
{
    char buf[8];
    int port = s->addr.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&s->addr)->sin6_port)
                                             : ntohs(((struct sockaddr_in *)&s->addr)->sin_port);
    snprintf(buf, sizeof(buf), "%d", port);
    char *p = strdup(buf);
    if (!p)
        return -ENOMEM;
    free(s->port);
    s->port = p;
    return 0;
}

static int serve_task(void *arg, void **result)
{
    cio_sharded_t *s = arg;
    int rc;
    if (s->o.balance == CIO_BALANCE_HANDOFF) {
        rc = on_shards(s, 0, s->n, open_shard_task);
        if (rc == 0)
            rc = on_shards(s, 0, 1, open_acceptor_task);
    } else {
        rc = on_shards(s, 0, 1, open_shard_task);
        if (rc == 0 && s->addrlen == 0)
            rc = -EADDRNOTAVAIL;
        if (rc == 0)
            rc = fix_port(s);
        if (rc == 0)
            rc = on_shards(s, 1, s->n, open_shard_task);
    }
    if (rc < 0) {
        teardown(s);
        set_unref(s);
        return rc;
    }
    if (s->o.adopt) {
        s->twin = s->o.adopt;
        s->twin->twin = s;
        s->twin->twin_is_successor = true;
        s->o.adopt = NULL;
    }
    *result = s;
    return 0;
}

/* ---- the public calls ----------------------------------------------------------------- */

static bool proxy_valid(const cio_proxy_opts_t *p)
{
    return !p || (p->versions && !(p->versions & ~(unsigned)CIO_PROXY_ANY) && p->timeout >= 0 &&
                  p->timeout < 1e9 && (p->trusted || !p->ntrusted));
}

/* The same PROXY options (NULL: none), ranges and all. */
static bool proxy_same(const cio_proxy_opts_t *a, const cio_proxy_opts_t *b)
{
    if (!a || !b)
        return a == b;
    return a->versions == b->versions && a->timeout == b->timeout && a->ntrusted == b->ntrusted &&
           (!a->ntrusted || memcmp(a->trusted, b->trusted, a->ntrusted * sizeof(*a->trusted)) == 0);
}

static bool opts_valid(const cio_sharded_opts_t *o, const char *port)
{
    int type = o->type ? o->type : SOCK_STREAM;
    if (type != SOCK_STREAM && type != SOCK_DGRAM)
        return false;
    if (o->balance != CIO_BALANCE_REUSEPORT && o->balance != CIO_BALANCE_HANDOFF)
        return false;
    if (type == SOCK_DGRAM && (o->balance != CIO_BALANCE_REUSEPORT || o->path))
        return false;
    if (o->path ? o->balance != CIO_BALANCE_HANDOFF : !port)
        return false;
    /* Datagrams carry no TLS, and PROXY v2 only (a header in each). */
    if (type == SOCK_DGRAM && (o->ssl || (o->proxy && o->proxy->versions != CIO_PROXY_V2)))
        return false;
    size_t per = o->socks_per_worker ? o->socks_per_worker : 1;
    if ((o->nsocks && (!o->socks || o->adopt || o->nsocks % per)) || per > GIVEN_MAX ||
        (type == SOCK_DGRAM && per > 1) || !proxy_valid(o->proxy))
        return false;
    for (size_t i = 0; i < o->nsocks; i++)
        if (o->socks[i] < 0)
            return false;
    return o->backlog >= 0 && o->drain_settle >= 0 && o->idle_timeout >= 0 &&
           o->ssl_handshake_timeout >= 0 && o->ssl_shutdown_timeout >= 0 &&
           !(o->write_high && o->write_low > o->write_high);
}

/* Can @p s take over @p from's sockets? */
static bool adoption_valid(const cio_sharded_t *s, const cio_sharded_t *from)
{
    return !from->closing && !from->twin && from->w == s->w && from->dgram == s->dgram &&
           from->o.balance == s->o.balance && !from->path == !s->path;
}

static int copy_socks(cio_sharded_t *s, const int *socks, size_t n)
{
    if (n && !(s->socks = malloc(n * sizeof(*socks))))
        return -ENOMEM;
    if (n)
        memcpy(s->socks, socks, n * sizeof(*socks));
    s->nsocks = n;
    return 0;
}

/*
 * Keep a copy of @p proxy (NULL: none) as the options every server gets. The
 * ranges it replaces stay until the set goes: a worker still opening, or
 * applying an earlier reconfigure, may be copying them.
 */
static int take_proxy(cio_sharded_t *s, const cio_proxy_opts_t *proxy)
{
    cio_cidr_t *v = NULL;
    if (s->proxy.trusted) {
        void **retired = realloc(s->retired, (s->nretired + 1) * sizeof(void *));
        if (!retired)
            return -ENOMEM;
        s->retired = retired;
    }
    if (proxy && proxy->ntrusted && !(v = malloc(proxy->ntrusted * sizeof(*v))))
        return -ENOMEM;
    if (v)
        memcpy(v, proxy->trusted, proxy->ntrusted * sizeof(*v));
    if (s->proxy.trusted)
        s->retired[s->nretired++] = (void *)s->proxy.trusted;
    s->proxy = proxy ? *proxy : (cio_proxy_opts_t){0};
    s->proxy.trusted = v;
    s->o.proxy = proxy ? &s->proxy : NULL;
    return 0;
}

cio_future_t *cio_workers_serve(cio_workers_t *w, cio_protocol_factory_t factory, void *factory_arg,
                                const char *host, const char *port, const cio_sharded_opts_t *opts)
{
    cio_sharded_opts_t o = opts ? *opts : (cio_sharded_opts_t){0};
    cio_loop_t *owner = cio_get_running_loop();
    if (!w || !factory || !owner || !opts_valid(&o, port))
        return NULL;
    cio_sharded_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->w = w;
    s->factory = factory;
    s->factory_arg = factory_arg;
    s->o = o;
    s->o.path = NULL;
    s->o.socks = NULL;
    if (o.ssl) /* the set's own reference, for every server it opens later */
        SSL_CTX_up_ref(o.ssl);
    s->dgram = o.type == SOCK_DGRAM;
    s->n = cio_workers_count(w);
    atomic_init(&s->refs, 1);
    s->shards = calloc(s->n, sizeof(*s->shards));
    bool ok = s->shards && (!host || (s->host = strdup(host))) &&
              (!port || (s->port = strdup(port))) && (!o.path || (s->path = strdup(o.path))) &&
              copy_socks(s, o.socks, o.nsocks) == 0 && take_proxy(s, o.proxy) == 0;
    for (size_t i = 0; ok && i < s->n; i++)
        s->shards[i] = (shard_t){.set = s, .index = i, .loop = cio_workers_loop(w, i)};
    if (!ok || (o.adopt && !adoption_valid(s, o.adopt))) {
        set_unref(s);
        return NULL;
    }
    cio_task_t *t = cio_loop_create_task(owner, serve_task, s, NULL);
    if (!t) {
        set_unref(s);
        return NULL;
    }
    return cio_task_future(t);
}

int cio_sharded_sockname(const cio_sharded_t *s, struct sockaddr_storage *addr, socklen_t *len)
{
    if (!s || !addr || !len)
        return -EINVAL;
    if (s->addrlen == 0)
        return -ENOTCONN;
    memcpy(addr, &s->addr, s->addrlen);
    *len = s->addrlen;
    return 0;
}

/* Sum a per-worker server counter, copying each worker's into @p counts. */
static size_t tally(const cio_sharded_t *s, size_t (*count)(const cio_server_t *), size_t *counts,
                    size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t c = s->shards[i].server ? count(s->shards[i].server) : 0;
        if (counts && i < n)
            counts[i] = c;
        total += c;
    }
    return total;
}

size_t cio_sharded_connections(const cio_sharded_t *s, size_t *counts, size_t n)
{
    return tally(s, cio_server_active_connections, counts, n);
}

size_t cio_sharded_accepted(const cio_sharded_t *s, size_t *counts, size_t n)
{
    return tally(s, cio_server_accepted_connections, counts, n);
}

/* ---- reconfiguring ------------------------------------------------------------------ */

static int reconfigure_shard_task(void *arg, void **result)
{
    shard_t *sh = arg;
    cio_server_opts_t o = server_opts(sh->set);
    int rc = sh->server ? cio_server_reconfigure(sh->server, &o) : 0;
    if (rc == 0 && sh->acceptor)
        rc = cio_server_reconfigure(sh->acceptor, &(cio_server_opts_t){.backlog = o.backlog});
    return rc;
}

static int reconfigure_task(void *arg, void **result)
{
    return on_shards(arg, 0, ((cio_sharded_t *)arg)->n, reconfigure_shard_task);
}

cio_future_t *cio_sharded_reconfigure(cio_sharded_t *s, const cio_sharded_opts_t *opts)
{
    cio_loop_t *owner = cio_get_running_loop();
    if (!s || !opts || !owner || s->closing || !opts_valid(opts, s->port))
        return NULL;
    const cio_sharded_opts_t *o = &s->o;
    if ((opts->type ? opts->type : SOCK_STREAM) != (o->type ? o->type : SOCK_STREAM) ||
        opts->family != o->family || opts->balance != o->balance || !opts->path != !s->path)
        return NULL;
    if (s->dgram && !proxy_same(opts->proxy, o->proxy)) /* an endpoint keeps its own */
        return NULL;
    /* Before anything changes: the one step that can fail. The workers' servers
     * copy the ranges they are given, so the old ones may go at once. */
    if (take_proxy(s, opts->proxy) < 0)
        return NULL;
    /* The workers read the new values after the mailbox carried the request. */
    s->o.backlog = opts->backlog;
    s->o.idle_timeout = opts->idle_timeout;
    s->o.write_high = opts->write_high;
    s->o.write_low = opts->write_low;
    if (opts->ssl)
        SSL_CTX_up_ref(opts->ssl);
    SSL_CTX_free(s->o.ssl);
    s->o.ssl = opts->ssl;
    s->o.ssl_handshake_timeout = opts->ssl_handshake_timeout;
    s->o.ssl_shutdown_timeout = opts->ssl_shutdown_timeout;
    cio_task_t *t = cio_loop_create_task(owner, reconfigure_task, s, NULL);
    return t ? cio_task_future(t) : NULL;
}

static int close_task(void *arg, void **result)
{
    cio_sharded_t *s = arg;
    int rc = on_shards(s, 0, s->n, close_shard_task);
    if (rc == 0 && s->o.balance == CIO_BALANCE_HANDOFF) {
        /* Connections already handed over must find their server open. */
        for (size_t i = 0; i < s->n && rc == 0; i++)
            while (rc == 0 && atomic_load_explicit(&s->shards[i].inflight, memory_order_relaxed))
                rc = cio_sleep(0.001);
        if (rc == 0)
            rc = on_shards(s, 0, s->n, close_target_task);
    }
    return rc;
}

/*
 * @p s closes first of two servers that share sockets: on the workers where
 * the successor took a copy of the socket, @p s lets go of its own without
 * draining (the socket, its queue and its new connections live on in the
 * twin). Whichever of the two closes first does so, so a take-over is undone
 * by closing the successor.
 */
static void untwin(cio_sharded_t *s)
{
    if (!s->twin)
        return;
    cio_sharded_t *successor = s->twin_is_successor ? s->twin : s;
    for (size_t i = 0; i < s->n; i++)
        s->shards[i].handed_over |= successor->shards[i].adopted;
    s->twin->twin = NULL;
    s->twin = NULL;
}

cio_future_t *cio_sharded_close(cio_sharded_t *s)
{
    cio_loop_t *owner = cio_get_running_loop();
    if (!s || !owner)
        return NULL;
    if (s->closing) {
        cio_future_t *fut = cio_loop_create_future(owner);
        if (fut)
            cio_future_set_result(fut, NULL);
        return fut;
    }
    s->closing = true;
    untwin(s);
    cio_task_t *t = cio_loop_create_task(owner, close_task, s, NULL);
    return t ? cio_task_future(t) : NULL;
}

static int wait_all_task(void *arg, void **result)
{
    cio_sharded_t *s = arg;
    return on_shards(s, 0, s->n, wait_closed_task);
}

cio_future_t *cio_sharded_wait_closed(cio_sharded_t *s)
{
    cio_loop_t *owner = cio_get_running_loop();
    if (!s || !owner)
        return NULL;
    cio_task_t *t = cio_loop_create_task(owner, wait_all_task, s, NULL);
    return t ? cio_task_future(t) : NULL;
}

static int close_clients_cb(void *arg)
{
    shard_t *sh = arg;
    if (sh->server)
        cio_server_close_clients(sh->server);
    return 0;
}

static int abort_clients_cb(void *arg)
{
    shard_t *sh = arg;
    if (sh->server)
        cio_server_abort_clients(sh->server);
    return 0;
}

void cio_sharded_close_clients(cio_sharded_t *s, bool abort)
{
    for (size_t i = 0; s && i < s->n; i++)
        cio_loop_call_soon_threadsafe(s->shards[i].loop,
                                      abort ? abort_clients_cb : close_clients_cb, &s->shards[i]);
}

size_t cio_sharded_sockets(const cio_sharded_t *s, size_t worker, int *fds, size_t max)
{
    return s && worker < s->n ? shard_sockets(&s->shards[worker], fds, max) : 0;
}

void cio_sharded_handed_over(cio_sharded_t *s, size_t i)
{
    if (s && i < s->n)
        s->shards[i].handed_over = true;
}

void cio_sharded_owned(cio_sharded_t *s, size_t i)
{
    if (s && i < s->n)
        s->shards[i].handed_over = false;
}

void cio_sharded_free(cio_sharded_t *s)
{
    if (!s)
        return;
    untwin(s);
    teardown(s);
    set_unref(s);
}
