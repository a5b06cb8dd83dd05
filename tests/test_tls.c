/*
 * tests/test_tls.c: TLS transports (coreio/tls.h) with client and server both
 * coreio, in one process, over 127.0.0.1 and Unix sockets: handshakes with TLS
 * 1.2 and 1.3 and what get_extra_info reports, bulk echo under flow control
 * and paused reading, the order of protocol callbacks, close_notify and
 * truncation, refused certificates, client certificates, the handshake and
 * shutdown timeouts, peers that do not speak TLS, start_tls (the ClientHello
 * pipelined after STARTTLS, sent a byte at a time, or replaced by plaintext),
 * bad arguments and 200 connections on one loop. Raw peers are non-blocking
 * sockets driven from the test's task, through OpenSSL directly when they
 * speak TLS. The PKI comes from tests/tls_pki.sh, made once before the tests.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "coreio/tls.h"
#include "many_echo.h"
#include "testutil.h"

#define KIB   1024
#define MIB   (1024 * 1024)
#define CHUNK (64 * KIB)

/* ---- the PKI ------------------------------------------------------------- */

static char pki_dir[PATH_MAX];

/*
 * Unchecked fixture (runs once, before the tests fork): make the PKI under
 * $top_builddir/tests/tls-pki. Outside make check the build directory is the
 * current one and the sources are here or one level up.
 */
static void pki_setup(void)
{
    const char *src = getenv("top_srcdir");
    const char *build = getenv("top_builddir");
    if (!src)
        src = access("tests/tls_pki.sh", R_OK) == 0 ? "." : "..";
    if (!build)
        build = ".";
    int n = snprintf(pki_dir, sizeof(pki_dir), "%s/tests/tls-pki", build);
    ck_assert_int_lt(n, (int)sizeof(pki_dir));
    char cmd[2 * PATH_MAX + 64];
    n = snprintf(cmd, sizeof(cmd), "sh '%s/tests/tls_pki.sh' '%s'", src, pki_dir);
    ck_assert_int_lt(n, (int)sizeof(cmd));
    int rc = system(cmd);
    ck_assert_msg(rc == 0, "%s: exit status %d", cmd, rc);
    /* Raw peers write with SSL_write, which cannot pass MSG_NOSIGNAL. */
    signal(SIGPIPE, SIG_IGN);
}

/* The path of @p name in the PKI; the last eight results stay valid. */
static const char *pki(const char *name)
{
    static char bufs[8][2 * PATH_MAX];
    static unsigned next;
    char *b = bufs[next++ % 8];
    int n = snprintf(b, sizeof(bufs[0]), "%s/%s", pki_dir, name);
    ck_assert_int_lt(n, (int)sizeof(bufs[0]));
    return b;
}

static SSL_CTX *server_ctx_of(const char *cert, const char *key)
{
    SSL_CTX *ctx = NULL;
    int rc = cio_tls_server_context(&ctx, pki(cert), pki(key));
    ck_assert_msg(rc == 0, "server context %s: %s", cert, cio_err_name(rc));
    ck_assert_ptr_nonnull(ctx);
    return ctx;
}

static SSL_CTX *server_ctx(void)
{
    return server_ctx_of("server.pem", "server.key");
}

static SSL_CTX *client_ctx_of(const char *cafile)
{
    SSL_CTX *ctx = NULL;
    int rc = cio_tls_client_context(&ctx, pki(cafile));
    ck_assert_msg(rc == 0, "client context %s: %s", cafile, cio_err_name(rc));
    ck_assert_ptr_nonnull(ctx);
    return ctx;
}

static SSL_CTX *client_ctx(void)
{
    return client_ctx_of("ca.pem");
}

/* Pin @p ctx to one protocol version. */
static void force_version(SSL_CTX *ctx, int version)
{
    ck_assert_int_eq(SSL_CTX_set_min_proto_version(ctx, version), 1);
    ck_assert_int_eq(SSL_CTX_set_max_proto_version(ctx, version), 1);
}

/* Give the client context @p ctx the certificate @p name (.pem and .key). */
static void use_client_cert(SSL_CTX *ctx, const char *name)
{
    char cert[64], key[64];
    snprintf(cert, sizeof(cert), "%s.pem", name);
    snprintf(key, sizeof(key), "%s.key", name);
    ck_assert_int_eq(SSL_CTX_use_certificate_chain_file(ctx, pki(cert)), 1);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(ctx, pki(key), SSL_FILETYPE_PEM), 1);
}

/* ---- helpers ------------------------------------------------------------- */

/* The byte at offset @p i of every test stream; 251 is prime, so shifted blocks differ. */
static uint8_t pattern_at(size_t i)
{
    return (uint8_t)(i % 251);
}

static void fill_pattern(uint8_t *buf, size_t off, size_t n)
{
    for (size_t k = 0; k < n; k++)
        buf[k] = pattern_at(off + k);
}

static double now(void)
{
    return cio_loop_time(cio_get_running_loop());
}

/*
 * Inside a task: let the loop run until @p cond holds. The deadline only keeps
 * a broken build from hanging; passing runs take milliseconds.
 */
#define WAIT_UNTIL_FOR(cond, secs)                                                                 \
    do {                                                                                           \
        double until_ = now() + (secs);                                                            \
        while (!(cond) && now() < until_)                                                          \
            cio_sleep(0.001);                                                                      \
        ck_assert_msg((cond), "timed out waiting for %s", #cond);                                  \
    } while (0)
#define WAIT_UNTIL(cond) WAIT_UNTIL_FOR(cond, 5.0)

/* An error code compared with the one wanted, both named on failure. */
#define ASSERT_ERR(got, want)                                                                      \
    do {                                                                                           \
        int g_ = (got), w_ = (want);                                                               \
        ck_assert_msg(g_ == w_, "%s is %s (%d), want %s (%d)", #got, cio_err_name(g_), g_,         \
                      cio_err_name(w_), w_);                                                       \
    } while (0)

/* Whether @p err is one of coreio's TLS codes. */
static bool is_tls_err(int err)
{
    return err <= CIO_ETLS && err >= CIO_ETLSBADCA;
}

#define ASSERT_TLS_ERR(got)                                                                        \
    do {                                                                                           \
        int g_ = (got);                                                                            \
        ck_assert_msg(is_tls_err(g_), "%s is %s (%d), want a CIO_ETLS* code", #got,                \
                      cio_err_name(g_), g_);                                                       \
    } while (0)

/* Inside a task: let the loop run @p n iterations. */
static void spin(int n)
{
    for (int i = 0; i < n; i++)
        cio_sleep(0);
}

/* Inside a task: await @p f, which must succeed; returns its result and drops @p f. */
static void *await_ok(cio_future_t *f)
{
    ck_assert_ptr_nonnull(f);
    void *res = NULL;
    int rc = cio_await(f, &res);
    const char *msg = cio_future_error_message(f);
    ck_assert_msg(rc == 0, "await failed: %s (%s)", cio_err_name(rc), msg ? msg : "");
    cio_future_unref(f);
    return res;
}

/* Inside a task: await @p f, which must fail; returns its error and drops @p f. */
static int await_err(cio_future_t *f)
{
    ck_assert_ptr_nonnull(f);
    int rc = cio_await(f, NULL);
    cio_future_unref(f);
    ck_assert_msg(rc < 0, "the future succeeded; it should have failed");
    return rc;
}

static void set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    ck_assert_int_ge(fl, 0);
    ck_assert_int_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

static bool readable_now(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 1;
}

static cio_protocol_t *static_factory(void *arg)
{
    return arg;
}

static int port_of_fd(int fd)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    return ntohs(a.sin_port);
}

static void port_of_server(cio_server_t *s, char *port, size_t len)
{
    int fd;
    ck_assert_uint_ge(cio_server_sockets(s, &fd, 1), 1);
    snprintf(port, len, "%d", port_of_fd(fd));
}

/* ---- a recording protocol ------------------------------------------------ */

typedef struct rec {
    cio_protocol_t base;
    cio_transport_t *t; /* from connection_made to connection_lost */
    char order[32];     /* M made, D data (a run counts once), E eof, L lost */
    int made, datas, eofs, lost, pauses, resumes;
    int lost_err;
    int after_lost;            /* callbacks that came after connection_lost */
    bool made_after_handshake; /* connection_made found the handshake done */
    bool echo;                 /* write back what arrives */
    bool flow;                 /* pause reading while writing is paused */
    double pause_for;          /* > 0: pause reading this long after each data_received */
    bool read_paused;          /* by pause_for */
    int data_while_paused;
    bool check_pattern; /* compare received bytes with pattern_at() */
    bool keep;          /* keep the received bytes in rx, NUL-terminated */
    size_t nrx, bad;
    uint8_t *rx;
    size_t rxcap;
} rec_t;

/* Record @p ev; a run of data counts once, so that orders compare as strings. */
static void note(rec_t *r, char ev)
{
    size_t n = strlen(r->order);
    if (r->lost)
        r->after_lost++;
    if (ev == 'D' && n > 0 && r->order[n - 1] == 'D')
        return;
    if (n + 1 < sizeof(r->order))
        r->order[n] = ev;
}

static int rec_made(cio_protocol_t *p, cio_transport_t *t)
{
    rec_t *r = (rec_t *)p;
    note(r, 'M');
    r->made++;
    r->t = t;
    /* The guarantee under test: the handshake is over before connection_made. */
    cio_extra_info_t info;
    if (cio_transport_get_extra_info(t, "ssl_object", &info) == 0 && info.object)
        r->made_after_handshake = SSL_is_init_finished(info.object);
    return 0;
}

static void rec_lost(cio_protocol_t *p, int err)
{
    rec_t *r = (rec_t *)p;
    note(r, 'L');
    r->lost++;
    r->lost_err = err;
    r->t = NULL;
}

static void rec_take(rec_t *r, const uint8_t *d, size_t n)
{
    if (r->check_pattern) {
        for (size_t k = 0; k < n; k++)
            r->bad += d[k] != pattern_at(r->nrx + k);
    }
    if (r->keep) {
        if (r->nrx + n + 1 > r->rxcap) {
            r->rxcap = 2 * (r->nrx + n + 1);
            r->rx = realloc(r->rx, r->rxcap);
            ck_assert_ptr_nonnull(r->rx);
        }
        memcpy(r->rx + r->nrx, d, n);
        r->rx[r->nrx + n] = '\0';
    }
    r->nrx += n;
}

/* The end of a pause_for pause. */
static int rec_resume_reading_cb(void *arg)
{
    rec_t *r = arg;
    r->read_paused = false;
    if (r->t)
        cio_transport_resume_reading(r->t);
    return 0;
}

static int rec_data(cio_protocol_t *p, const void *data, size_t len)
{
    rec_t *r = (rec_t *)p;
    note(r, 'D');
    r->datas++;
    r->data_while_paused += r->read_paused;
    rec_take(r, data, len);
    if (r->echo) {
        int rc = cio_transport_write(r->t, data, len);
        if (rc < 0)
            return rc;
    }
    if (r->pause_for > 0) { /* a slow consumer: hold reading back a while */
        cio_transport_pause_reading(r->t);
        r->read_paused = true;
        return cio_loop_call_later(cio_transport_get_loop(r->t), r->pause_for,
                                   rec_resume_reading_cb, r, NULL);
    }
    return 0;
}

static int rec_eof(cio_protocol_t *p)
{
    rec_t *r = (rec_t *)p;
    note(r, 'E');
    r->eofs++;
    return 0;
}

/* With @c flow, an echo stops reading while its own writes are paused. */
static int rec_pause(cio_protocol_t *p)
{
    rec_t *r = (rec_t *)p;
    r->pauses++;
    if (r->flow && r->t)
        cio_transport_pause_reading(r->t);
    return 0;
}

static int rec_resume(cio_protocol_t *p)
{
    rec_t *r = (rec_t *)p;
    r->resumes++;
    if (r->flow && r->t)
        cio_transport_resume_reading(r->t);
    return 0;
}

static const cio_protocol_ops_t rec_ops = {
    .connection_made = rec_made,
    .connection_lost = rec_lost,
    .pause_writing = rec_pause,
    .resume_writing = rec_resume,
    .data_received = rec_data,
    .eof_received = rec_eof,
};

static void rec_init(rec_t *r)
{
    memset(r, 0, sizeof(*r));
    r->base.ops = &rec_ops;
}

static void rec_fini(rec_t *r)
{
    free(r->rx);
    r->rx = NULL;
}

/* The server side: up to POOL recording protocols, each a copy of @c tmpl. */
#define POOL 8

typedef struct pool {
    rec_t tmpl;
    rec_t r[POOL];
    int n;
} pool_t;

static cio_protocol_t *pool_factory(void *arg)
{
    pool_t *pl = arg;
    if (pl->n == POOL)
        return NULL;
    rec_t *r = &pl->r[pl->n++];
    *r = pl->tmpl;
    return &r->base;
}

static void pool_init(pool_t *pl)
{
    memset(pl, 0, sizeof(*pl));
    rec_init(&pl->tmpl);
}

static void pool_fini(pool_t *pl)
{
    for (int i = 0; i < pl->n; i++)
        rec_fini(&pl->r[i]);
}

/* Every protocol the server made was lost without connection_made; returns the last error. */
static int pool_all_refused(pool_t *pl)
{
    int err = 0;
    for (int i = 0; i < pl->n; i++) {
        WAIT_UNTIL(pl->r[i].lost == 1);
        ck_assert_int_eq(pl->r[i].made, 0);
        ck_assert_int_eq(pl->r[i].datas, 0);
        ck_assert_str_eq(pl->r[i].order, "L");
        ck_assert_msg(pl->r[i].lost_err < 0, "server protocol %d lost with %s", i,
                      cio_err_name(pl->r[i].lost_err));
        err = pl->r[i].lost_err;
    }
    return err;
}

/* Inside a task: a server on 127.0.0.1 with @p opts, its port in @p port. */
static cio_server_t *start_server(pool_t *pl, const cio_server_opts_t *opts, char *port, size_t len)
{
    cio_server_t *s = await_ok(
        cio_loop_create_server(cio_get_running_loop(), pool_factory, pl, "127.0.0.1", "0", opts));
    port_of_server(s, port, len);
    return s;
}

/* Inside a task: start a TLS connection for @p r to 127.0.0.1:@p port. */
static cio_future_t *tls_connect(rec_t *r, const char *port, SSL_CTX *ctx, const char *hostname,
                                 double handshake_timeout, double shutdown_timeout)
{
    cio_connection_opts_t o = {.ssl = ctx,
                               .server_hostname = hostname,
                               .ssl_handshake_timeout = handshake_timeout,
                               .ssl_shutdown_timeout = shutdown_timeout};
    return cio_loop_create_connection(cio_get_running_loop(), static_factory, r, "127.0.0.1", port,
                                      &o);
}

/* What most tests start from: the two contexts, and a TLS server's protocols. */
typedef struct env {
    SSL_CTX *sctx, *cctx;
    pool_t pl;
    cio_server_t *s;
    char port[16];
} env_t;

/* The server context from @p name.pem and @p name.key, the client's from ca.pem. */
static void env_init(env_t *e, const char *name)
{
    char cert[64], key[64];
    snprintf(cert, sizeof(cert), "%s.pem", name);
    snprintf(key, sizeof(key), "%s.key", name);
    pool_init(&e->pl);
    e->sctx = server_ctx_of(cert, key);
    e->cctx = client_ctx();
    e->s = NULL;
}

/* Inside a task: serve TLS on 127.0.0.1 with the server context and @p so (NULL: defaults). */
static void env_serve(env_t *e, const cio_server_opts_t *so)
{
    cio_server_opts_t o = so ? *so : (cio_server_opts_t){0};
    o.ssl = e->sctx;
    e->s = start_server(&e->pl, &o, e->port, sizeof(e->port));
}

/* Inside a task: wait until every connection the server accepted (@p n) is gone. */
static void env_drained(env_t *e, size_t n)
{
    WAIT_UNTIL(cio_server_accepted_connections(e->s) == n);
    WAIT_UNTIL(cio_server_active_connections(e->s) == 0);
}

static void env_fini(env_t *e)
{
    cio_server_free(e->s);
    SSL_CTX_free(e->sctx);
    SSL_CTX_free(e->cctx);
    pool_fini(&e->pl);
}

/* ---- raw peers ------------------------------------------------------------ */

/* A non-blocking TCP connection to 127.0.0.1:@p port with TCP_NODELAY; @p rcvbuf 0: default. */
static int raw_connect(const char *port, int rcvbuf)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    if (rcvbuf)
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    int one = 1;
    ck_assert_int_eq(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
    set_nonblocking(fd);
    return fd;
}

/* A listening socket on 127.0.0.1 (port in @p port); accepted sockets inherit @p rcvbuf. */
static int raw_listen(char *port, size_t len, int rcvbuf)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(l, 0);
    if (rcvbuf)
        ck_assert_int_eq(setsockopt(l, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(l, 8), 0);
    snprintf(port, len, "%d", port_of_fd(l));
    return l;
}

/* Inside a task: accept one connection on @p l (non-blocking), letting the loop run. */
static int raw_accept(int l)
{
    WAIT_UNTIL(readable_now(l));
    int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    ck_assert_int_ge(fd, 0);
    return fd;
}

/* Inside a task: send all of @p data on the non-blocking @p fd. */
static void raw_send(int fd, const void *data, size_t len)
{
    const uint8_t *d = data;
    double until = now() + 5.0;
    while (len > 0) {
        ssize_t n = send(fd, d, len, MSG_NOSIGNAL);
        if (n > 0) {
            d += n;
            len -= (size_t)n;
            continue;
        }
        ck_assert_msg(errno == EAGAIN || errno == EINTR, "send: %s", strerror(errno));
        ck_assert_msg(now() < until, "send: the peer does not read");
        cio_sleep(0.001);
    }
}

/* Inside a task: read exactly @p len bytes from the non-blocking @p fd. */
static void raw_read_exact(int fd, void *buf, size_t len)
{
    size_t got = 0;
    double until = now() + 5.0;
    while (got < len) {
        ssize_t n = recv(fd, (uint8_t *)buf + got, len - got, 0);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        ck_assert_msg(n < 0 && (errno == EAGAIN || errno == EINTR), "recv: %zd (%s)", n,
                      n < 0 ? strerror(errno) : "EOF");
        ck_assert_msg(now() < until, "only %zu of %zu bytes came", got, len);
        cio_sleep(0.001);
    }
}

/*
 * Inside a task: read the non-blocking @p fd until EOF (a reset counts as
 * one) into @p buf; returns the count.
 */
static size_t raw_read_to_eof(int fd, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    double until = now() + 5.0;
    for (;;) {
        ck_assert_uint_lt(got, cap);
        ssize_t n = recv(fd, buf + got, cap - got, 0);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0 || errno == ECONNRESET)
            return got;
        ck_assert_msg(errno == EAGAIN || errno == EINTR, "recv: %s", strerror(errno));
        ck_assert_msg(now() < until, "no EOF after %zu bytes", got);
        cio_sleep(0.001);
    }
}

/*
 * An SSL for a raw peer on @p fd, made with OpenSSL alone: a server with
 * server.pem, or a client that checks nothing.
 */
static SSL *raw_ssl(int fd, bool server)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    ck_assert_ptr_nonnull(ctx);
    if (server) {
        ck_assert_int_eq(SSL_CTX_use_certificate_chain_file(ctx, pki("server.pem")), 1);
        ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(ctx, pki("server.key"), SSL_FILETYPE_PEM), 1);
    }
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    ck_assert_ptr_nonnull(ssl);
    ck_assert_int_eq(SSL_set_fd(ssl, fd), 1);
    if (server)
        SSL_set_accept_state(ssl);
    else
        SSL_set_connect_state(ssl);
    return ssl;
}

/* Whether an OpenSSL call that returned @p rc on @p ssl only has to be retried later. */
static bool ssl_retry(SSL *ssl, int rc)
{
    int e = SSL_get_error(ssl, rc);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* Inside a task: complete @p ssl's handshake on its non-blocking socket. */
static void raw_handshake(SSL *ssl)
{
    double until = now() + 5.0;
    for (;;) {
        ERR_clear_error();
        int rc = SSL_do_handshake(ssl);
        if (rc == 1)
            return;
        ck_assert_msg(ssl_retry(ssl, rc), "raw handshake: SSL error %d, %s", SSL_get_error(ssl, rc),
                      ERR_reason_error_string(ERR_peek_error()));
        ck_assert_msg(now() < until, "raw handshake timed out");
        cio_sleep(0.001);
    }
}

/* Inside a task: read exactly @p len bytes of plaintext from @p ssl. */
static void raw_ssl_read(SSL *ssl, void *buf, size_t len)
{
    size_t got = 0;
    double until = now() + 5.0;
    while (got < len) {
        ERR_clear_error();
        int n = SSL_read(ssl, (char *)buf + got, (int)(len - got));
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        ck_assert_msg(ssl_retry(ssl, n), "raw SSL_read: SSL error %d", SSL_get_error(ssl, n));
        ck_assert_msg(now() < until, "raw SSL_read timed out");
        cio_sleep(0.001);
    }
}

/* Inside a task: write @p s through @p ssl. */
static void raw_ssl_write(SSL *ssl, const char *s)
{
    double until = now() + 5.0;
    for (;;) {
        ERR_clear_error();
        int n = SSL_write(ssl, s, (int)strlen(s));
        if (n > 0) {
            ck_assert_int_eq(n, (int)strlen(s));
            return;
        }
        ck_assert_msg(ssl_retry(ssl, n), "raw SSL_write: SSL error %d", SSL_get_error(ssl, n));
        ck_assert_msg(now() < until, "raw SSL_write timed out");
        cio_sleep(0.001);
    }
}

/* Free @p ssl and close its socket without a close_notify. */
static void raw_ssl_drop(SSL *ssl)
{
    int fd = SSL_get_fd(ssl);
    SSL_free(ssl);
    close(fd);
}

/*
 * A TLS client over memory BIOs: the test moves its bytes by hand, so it
 * decides what goes into each write to the socket.
 */
typedef struct memtls {
    SSL *ssl;
    BIO *in;  /* what the server sent, fed by the test */
    BIO *out; /* what OpenSSL has to send */
} memtls_t;

static void memtls_init(memtls_t *m)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(ctx);
    m->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    ck_assert_ptr_nonnull(m->ssl);
    m->in = BIO_new(BIO_s_mem());
    m->out = BIO_new(BIO_s_mem());
    ck_assert(m->in && m->out);
    SSL_set_bio(m->ssl, m->in, m->out);
    SSL_set_connect_state(m->ssl);
    ck_assert_int_eq(SSL_set_tlsext_host_name(m->ssl, "localhost"), 1);
}

/* Move what OpenSSL has to send into @p buf (at most @p cap bytes); returns the count. */
static size_t memtls_take(memtls_t *m, uint8_t *buf, size_t cap)
{
    int n = BIO_read(m->out, buf, (int)cap);
    ck_assert_int_eq(BIO_pending(m->out), 0);
    return n > 0 ? (size_t)n : 0;
}

/* Inside a task: send what OpenSSL has to send on @p fd. */
static void memtls_flush(memtls_t *m, int fd)
{
    uint8_t buf[4096];
    while (BIO_pending(m->out) > 0) {
        int n = BIO_read(m->out, buf, sizeof(buf));
        ck_assert_int_gt(n, 0);
        raw_send(fd, buf, (size_t)n);
    }
}

/* Feed OpenSSL what @p fd has now. */
static void memtls_feed(memtls_t *m, int fd)
{
    uint8_t buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        ck_assert_int_eq(BIO_write(m->in, buf, (int)n), (int)n);
    ck_assert_msg(n < 0 && (errno == EAGAIN || errno == EINTR), "recv: %zd (%s)", n,
                  n < 0 ? strerror(errno) : "EOF");
}

/* Inside a task: finish the handshake, moving bytes between OpenSSL and @p fd. */
static void memtls_handshake(memtls_t *m, int fd)
{
    double until = now() + 5.0;
    for (;;) {
        ERR_clear_error();
        int rc = SSL_do_handshake(m->ssl);
        memtls_flush(m, fd);
        if (rc == 1)
            return;
        ck_assert_msg(ssl_retry(m->ssl, rc), "memory-BIO handshake: SSL error %d, %s",
                      SSL_get_error(m->ssl, rc), ERR_reason_error_string(ERR_peek_error()));
        ck_assert_msg(now() < until, "memory-BIO handshake timed out");
        cio_sleep(0.001);
        memtls_feed(m, fd);
    }
}

/* Inside a task: send @p s through TLS and read the same back (the server echoes). */
static void memtls_echo(memtls_t *m, int fd, const char *s)
{
    size_t len = strlen(s), got = 0;
    char buf[256];
    ck_assert_uint_lt(len, sizeof(buf));
    ck_assert_int_eq(SSL_write(m->ssl, s, (int)len), (int)len);
    memtls_flush(m, fd);
    double until = now() + 5.0;
    while (got < len) {
        int n = SSL_read(m->ssl, buf + got, (int)(len - got));
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        ck_assert_msg(ssl_retry(m->ssl, n), "memory-BIO SSL_read: SSL error %d",
                      SSL_get_error(m->ssl, n));
        ck_assert_msg(now() < until, "no echo");
        cio_sleep(0.001);
        memtls_feed(m, fd);
    }
    ck_assert_mem_eq(buf, s, len);
}

/* ---- handshakes and extra info -------------------------------------------- */

/* "ssl_object", "sslcontext", "cipher", "compression" and "peercert" of @p t. */
static void check_tls_info(cio_transport_t *t, SSL_CTX *ctx, int version, bool want_peercert)
{
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(t, "sslcontext", &info), 0);
    ck_assert_ptr_eq(info.object, ctx);
    ck_assert_int_eq(cio_transport_get_extra_info(t, "ssl_object", &info), 0);
    SSL *ssl = info.object;
    ck_assert_ptr_nonnull(ssl);
    ck_assert_ptr_eq(SSL_get_SSL_CTX(ssl), ctx);
    ck_assert_int_eq(SSL_version(ssl), version);
    ck_assert_int_eq(cio_transport_get_extra_info(t, "cipher", &info), 0);
    ck_assert_ptr_nonnull(info.name);
    ck_assert_str_eq(info.name, SSL_get_cipher_name(ssl));
    ck_assert_str_eq(info.version, version == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2");
    ck_assert_int_eq(info.bits, SSL_get_cipher_bits(ssl, NULL));
    ck_assert_int_ge(info.bits, 128);
    info.name = "not cleared";
    ck_assert_int_eq(cio_transport_get_extra_info(t, "compression", &info), 0);
    ck_assert_ptr_null(info.name);
    ck_assert_int_eq(cio_transport_get_extra_info(t, "peercert", &info), 0);
    if (want_peercert)
        ck_assert_ptr_nonnull(info.object);
    else
        ck_assert_ptr_null(info.object);
}

/* The port of the address "peername" or "sockname" of @p t (IPv4 loopback). */
static int port_of(cio_transport_t *t, const char *name)
{
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(t, name, &info), 0);
    const struct sockaddr_in *a = (const struct sockaddr_in *)&info.addr;
    ck_assert_uint_eq(info.addrlen, sizeof(*a));
    ck_assert_int_eq(a->sin_family, AF_INET);
    ck_assert_uint_eq(a->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    return ntohs(a->sin_port);
}

/* The client's and the server's transports, both open, and their extra info. */
static void check_both_sides(env_t *e, cio_transport_t *ct, rec_t *sr, int version)
{
    ck_assert_int_eq(sr->made, 1);
    ck_assert(sr->made_after_handshake);
    check_tls_info(ct, e->cctx, version, true);
    check_tls_info(sr->t, e->sctx, version, false);
    /* The client was handed the server's leaf, for localhost. */
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(ct, "peercert", &info), 0);
    ck_assert_int_eq(X509_check_host(info.object, "localhost", 0, 0, NULL), 1);
    /* The socket addresses are still there under TLS. */
    ck_assert_int_eq(port_of(ct, "peername"), atoi(e->port));
    ck_assert_int_eq(port_of(sr->t, "sockname"), atoi(e->port));
    ck_assert_int_eq(port_of(ct, "sockname"), port_of(sr->t, "peername"));
    ck_assert_int_eq(cio_transport_get_extra_info(ct, "socket", &info), 0);
    ck_assert_int_ge(info.fd, 0);
}

typedef struct version_case {
    int version;
    const char *cert; /* the server's */
} version_case_t;

static int handshake_fn(void *arg, void **result)
{
    const version_case_t *vc = arg;
    env_t e;
    env_init(&e, vc->cert);
    force_version(e.cctx, vc->version);
    e.pl.tmpl.echo = true;
    env_serve(&e, NULL);
    rec_t cli;
    rec_init(&cli);
    cli.keep = true;
    cio_transport_t *ct = await_ok(tls_connect(&cli, e.port, e.cctx, NULL, 0, 0));
    ck_assert_ptr_eq(cli.t, ct);
    ck_assert(cli.made_after_handshake);
    ck_assert_int_eq(cio_transport_write(ct, "hello, tls", 10), 0);
    WAIT_UNTIL(cli.nrx == 10);
    ck_assert_str_eq((char *)cli.rx, "hello, tls");
    ck_assert_int_eq(e.pl.n, 1);
    check_both_sides(&e, ct, &e.pl.r[0], vc->version);
    cio_transport_close(ct);
    WAIT_UNTIL(cli.lost == 1 && e.pl.r[0].lost == 1);
    ASSERT_ERR(cli.lost_err, 0);
    ASSERT_ERR(e.pl.r[0].lost_err, 0);
    env_fini(&e);
    rec_fini(&cli);
    return 0;
}

START_TEST(test_tls12_handshake_echoes_and_reports_cipher_and_certificates)
{
    version_case_t vc = {TLS1_2_VERSION, "server"};
    ck_assert_int_eq(cio_run(handshake_fn, &vc, false, NULL), 0);
}
END_TEST

START_TEST(test_tls13_handshake_echoes_and_reports_cipher_and_certificates)
{
    version_case_t vc = {TLS1_3_VERSION, "server"};
    ck_assert_int_eq(cio_run(handshake_fn, &vc, false, NULL), 0);
}
END_TEST

START_TEST(test_tls12_handshake_with_an_rsa_certificate_echoes)
{
    version_case_t vc = {TLS1_2_VERSION, "server-rsa"};
    ck_assert_int_eq(cio_run(handshake_fn, &vc, false, NULL), 0);
}
END_TEST

/* A Unix server with TLS, and create_unix_connection with TLS. */
static int unix_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    env_t e;
    env_init(&e, "server");
    e.pl.tmpl.echo = true;
    char dir[] = "/tmp/cio-tls-XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/s", dir);
    cio_server_opts_t so = {.ssl = e.sctx};
    e.s = await_ok(cio_loop_create_unix_server(loop, pool_factory, &e.pl, path, &so));
    rec_t cli;
    rec_init(&cli);
    cli.keep = true;
    cio_connection_opts_t co = {.ssl = e.cctx, .server_hostname = "localhost"};
    cio_transport_t *ct =
        await_ok(cio_loop_create_unix_connection(loop, static_factory, &cli, path, &co));
    /* Connected: the socket file is no longer needed, and a failure below leaves none. */
    unlink(path);
    rmdir(dir);
    ck_assert(cli.made_after_handshake);
    ck_assert_int_eq(cio_transport_write(ct, "over unix", 9), 0);
    WAIT_UNTIL(cli.nrx == 9);
    ck_assert_str_eq((char *)cli.rx, "over unix");
    check_tls_info(ct, e.cctx, TLS1_3_VERSION, true);
    check_tls_info(e.pl.r[0].t, e.sctx, TLS1_3_VERSION, false);
    cio_transport_close(ct);
    WAIT_UNTIL(cli.lost == 1 && e.pl.r[0].lost == 1);
    ASSERT_ERR(cli.lost_err, 0);
    ASSERT_ERR(e.pl.r[0].lost_err, 0);
    env_fini(&e);
    rec_fini(&cli);
    return 0;
}

START_TEST(test_tls_echoes_over_a_unix_server)
{
    ck_assert_int_eq(cio_run(unix_fn, NULL, false, NULL), 0);
}
END_TEST

/* connect_accepted_socket is the server side, create_connection(use_sock) the client. */
static int accepted_pair_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    env_t e;
    env_init(&e, "server");
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    rec_t srv, cli;
    rec_init(&srv);
    rec_init(&cli);
    srv.echo = true;
    cli.keep = true;
    cio_connection_opts_t ao = {.ssl = e.sctx};
    cio_future_t *sf = cio_loop_connect_accepted_socket(loop, static_factory, &srv, sv[0], &ao);
    cio_connection_opts_t uo = {
        .use_sock = true, .sock = sv[1], .ssl = e.cctx, .server_hostname = "localhost"};
    cio_transport_t *ct =
        await_ok(cio_loop_create_connection(loop, static_factory, &cli, NULL, NULL, &uo));
    ck_assert_ptr_eq(await_ok(sf), srv.t);
    ck_assert(srv.made_after_handshake && cli.made_after_handshake);
    ck_assert_int_eq(cio_transport_write(ct, "pair", 4), 0);
    WAIT_UNTIL(cli.nrx == 4);
    ck_assert_str_eq((char *)cli.rx, "pair");
    cio_transport_close(ct);
    WAIT_UNTIL(cli.lost == 1 && srv.lost == 1);
    ASSERT_ERR(cli.lost_err, 0);
    ASSERT_ERR(srv.lost_err, 0);
    env_fini(&e);
    rec_fini(&cli);
    rec_fini(&srv);
    return 0;
}

START_TEST(test_an_accepted_socket_becomes_the_server_side_of_tls)
{
    ck_assert_int_eq(cio_run(accepted_pair_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- bulk data ------------------------------------------------------------ */

/* A client that writes @c total bytes of pattern in CHUNK writes while not paused. */
typedef struct pump {
    rec_t r; /* first: the protocol */
    size_t total, sent;
    bool paused;
    size_t max_buffered; /* the write buffer's peak right after a write */
    uint8_t *chunk;
} pump_t;

static void pump_more(pump_t *pm)
{
    while (!pm->paused && pm->sent < pm->total && pm->r.t) {
        size_t n = pm->total - pm->sent < CHUNK ? pm->total - pm->sent : CHUNK;
        fill_pattern(pm->chunk, pm->sent, n);
        ck_assert_int_eq(cio_transport_write(pm->r.t, pm->chunk, n), 0);
        pm->sent += n;
        size_t b = cio_transport_get_write_buffer_size(pm->r.t);
        if (b > pm->max_buffered)
            pm->max_buffered = b;
    }
}

static int pump_pause(cio_protocol_t *p)
{
    pump_t *pm = (pump_t *)p;
    pm->paused = true;
    return rec_pause(p);
}

static int pump_resume(cio_protocol_t *p)
{
    pump_t *pm = (pump_t *)p;
    pm->paused = false;
    rec_resume(p);
    pump_more(pm);
    return 0;
}

static const cio_protocol_ops_t pump_ops = {
    .connection_made = rec_made,
    .connection_lost = rec_lost,
    .pause_writing = pump_pause,
    .resume_writing = pump_resume,
    .data_received = rec_data,
    .eof_received = rec_eof,
};

static int bulk_fn(void *arg, void **result)
{
    env_t e;
    env_init(&e, "server");
    e.pl.tmpl.echo = e.pl.tmpl.flow = e.pl.tmpl.check_pattern = true;
    env_serve(&e, NULL);
    pump_t pm = {.total = 10 * MIB};
    rec_init(&pm.r);
    pm.r.base.ops = &pump_ops;
    pm.r.check_pattern = true;
    pm.chunk = malloc(CHUNK);
    ck_assert_ptr_nonnull(pm.chunk);
    cio_transport_t *ct = await_ok(tls_connect(&pm.r, e.port, e.cctx, NULL, 0, 0));
    size_t low, high;
    cio_transport_get_write_buffer_limits(ct, &low, &high);
    pump_more(&pm);
    WAIT_UNTIL_FOR(pm.r.nrx == pm.total, 15.0);
    ck_assert_uint_eq(pm.sent, pm.total);
    ck_assert_uint_eq(pm.r.bad, 0);
    ck_assert_uint_eq(e.pl.r[0].nrx, pm.total);
    ck_assert_uint_eq(e.pl.r[0].bad, 0);
    /*
     * Flow control worked: the client was paused and resumed, and its buffer
     * stayed bounded. (Whether the echo side pauses depends on how fast the
     * client reads, so only its pairing is checked.)
     */
    ck_assert_int_ge(pm.r.pauses, 1);
    WAIT_UNTIL(pm.r.resumes == pm.r.pauses);
    ck_assert_int_eq(e.pl.r[0].resumes, e.pl.r[0].pauses);
    ck_assert_msg(pm.max_buffered <= high + CHUNK + 5 * 29, "write buffer reached %zu (high %zu)",
                  pm.max_buffered, high);
    cio_transport_close(ct);
    WAIT_UNTIL(pm.r.lost == 1 && e.pl.r[0].lost == 1);
    ASSERT_ERR(pm.r.lost_err, 0);
    ASSERT_ERR(e.pl.r[0].lost_err, 0);
    free(pm.chunk);
    env_fini(&e);
    return 0;
}

START_TEST(test_ten_megabytes_echo_intact_under_flow_control)
{
    ck_assert_int_eq(cio_run(bulk_fn, NULL, false, NULL), 0);
}
END_TEST

/*
 * The server pauses reading after each data_received and resumes a little
 * later. The client writes once and then stays silent, so whatever OpenSSL
 * had already decrypted must come out on resume without new socket data.
 */
static int paused_fn(void *arg, void **result)
{
    env_t e;
    env_init(&e, "server");
    e.pl.tmpl.check_pattern = true;
    e.pl.tmpl.pause_for = 0.01;
    env_serve(&e, NULL);
    rec_t cli;
    rec_init(&cli);
    cio_transport_t *ct = await_ok(tls_connect(&cli, e.port, e.cctx, NULL, 0, 0));
    size_t first = 512 * KIB, total = 2 * MIB;
    uint8_t *buf = malloc(total);
    ck_assert_ptr_nonnull(buf);
    fill_pattern(buf, 0, total);
    ck_assert_int_eq(cio_transport_write(ct, buf, first), 0);
    rec_t *sr = &e.pl.r[0];
    WAIT_UNTIL(e.pl.n == 1 && sr->nrx == first);
    ck_assert_int_ge(sr->datas, 2);
    /* Then a longer stream with shorter pauses, written in pieces. */
    sr->pause_for = 0.001;
    for (size_t off = first; off < total; off += 100 * KIB) {
        size_t n = total - off < 100 * KIB ? total - off : 100 * KIB;
        ck_assert_int_eq(cio_transport_write(ct, buf + off, n), 0);
        spin(2);
    }
    WAIT_UNTIL_FOR(sr->nrx == total, 10.0);
    ck_assert_uint_eq(sr->bad, 0);
    ck_assert_int_eq(sr->data_while_paused, 0);
    WAIT_UNTIL(!sr->read_paused);
    cio_transport_close(ct);
    WAIT_UNTIL(cli.lost == 1 && sr->lost == 1);
    ck_assert_uint_eq(sr->nrx, total);
    ASSERT_ERR(sr->lost_err, 0);
    free(buf);
    env_fini(&e);
    return 0;
}

START_TEST(test_paused_reading_holds_plaintext_and_delivers_it_in_order_after_resume)
{
    ck_assert_int_eq(cio_run(paused_fn, NULL, false, NULL), 0);
}
END_TEST

/*
 * sendfile over TLS: the kernel cannot encrypt, so with fallback the bytes
 * take the read/write path and arrive intact; without it the call fails with
 * CIO_ENOSENDFILE and sends nothing, as asyncio's SendfileNotAvailableError.
 */
static int sendfile_fn(void *arg, void **result)
{
    env_t e;
    env_init(&e, "server");
    e.pl.tmpl.check_pattern = true;
    env_serve(&e, NULL);
    rec_t cli;
    rec_init(&cli);
    cio_transport_t *ct = await_ok(tls_connect(&cli, e.port, e.cctx, NULL, 0, 0));
    size_t total = 3 * MIB + 7;
    uint8_t *buf = malloc(total);
    ck_assert_ptr_nonnull(buf);
    fill_pattern(buf, 0, total);
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, total, f), total);
    fflush(f);
    int fd = fileno(f);
    void *sent = NULL;
    cio_future_t *no = cio_loop_sendfile(cio_get_running_loop(), ct, fd, 0, 0, false);
    ck_assert_int_eq(cio_await(no, &sent), CIO_ENOSENDFILE);
    cio_future_unref(no);
    cio_future_t *yes = cio_loop_sendfile(cio_get_running_loop(), ct, fd, 0, 0, true);
    ck_assert_int_eq(cio_await(yes, &sent), 0);
    cio_future_unref(yes);
    ck_assert_uint_eq((uintptr_t)sent, total);
    rec_t *sr = &e.pl.r[0];
    WAIT_UNTIL_FOR(sr->nrx == total, 10.0);
    ck_assert_uint_eq(sr->bad, 0);
    cio_transport_close(ct);
    WAIT_UNTIL(cli.lost == 1 && sr->lost == 1);
    ASSERT_ERR(sr->lost_err, 0);
    fclose(f);
    free(buf);
    env_fini(&e);
    return 0;
}

/* A client resumes the session of an earlier connection given as ssl_session. */
static int resume_fn(void *arg, void **result)
{
    env_t e;
    env_init(&e, "server");
    e.pl.tmpl.echo = true;
    env_serve(&e, NULL);
    SSL_SESSION *sess = NULL;
    for (int round = 0; round < 2; round++) {
        rec_t cli;
        rec_init(&cli);
        cli.keep = true;
        cio_connection_opts_t o = {.ssl = e.cctx, .ssl_session = sess};
        cio_transport_t *ct = await_ok(cio_loop_create_connection(
            cio_get_running_loop(), static_factory, &cli, "127.0.0.1", e.port, &o));
        cio_extra_info_t info;
        ck_assert_int_eq(cio_transport_get_extra_info(ct, "ssl_object", &info), 0);
        ck_assert_int_eq(SSL_session_reused(info.object), round == 1);
        /* The echo brings TLS 1.3's tickets along: they come after the handshake. */
        ck_assert_int_eq(cio_transport_write(ct, "ping", 4), 0);
        WAIT_UNTIL(cli.nrx == 4);
        if (round == 0) {
            sess = SSL_get1_session(info.object);
            ck_assert(sess && SSL_SESSION_is_resumable(sess));
        }
        cio_transport_close(ct);
        WAIT_UNTIL(cli.lost == 1);
        rec_fini(&cli);
    }
    SSL_SESSION_free(sess);
    env_fini(&e);
    return 0;
}

START_TEST(test_a_client_resumes_the_session_it_is_given)
{
    ck_assert_int_eq(cio_run(resume_fn, NULL, false, NULL), 0);
}
END_TEST

START_TEST(test_sendfile_over_tls_takes_the_read_write_path)
{
    ck_assert_int_eq(cio_run(sendfile_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- the order of callbacks, and the end of a connection ------------------ */

/* Clients that never finish a handshake: silent, and half a ClientHello. */
static int never_completes_fn(void *arg, void **result)
{
    env_t e;
    env_init(&e, "server");
    env_serve(&e, NULL);
    int fd = raw_connect(e.port, 0);
    WAIT_UNTIL(cio_server_accepted_connections(e.s) == 1);
    spin(5);
    close(fd);
    memtls_t m;
    memtls_init(&m);
    ck_assert_int_eq(SSL_do_handshake(m.ssl), -1);
    uint8_t hello[4096];
    ck_assert_uint_gt(memtls_take(&m, hello, sizeof(hello)), 40);
    SSL_free(m.ssl);
    fd = raw_connect(e.port, 0);
    raw_send(fd, hello, 40);
    WAIT_UNTIL(cio_server_accepted_connections(e.s) == 2);
    spin(5);
    close(fd);
    env_drained(&e, 2);
    pool_all_refused(&e.pl);
    env_fini(&e);
    return 0;
}

START_TEST(test_a_client_that_never_completes_the_handshake_never_gets_connection_made)
{
    ck_assert_int_eq(cio_run(never_completes_fn, NULL, false, NULL), 0);
}
END_TEST

/* Made after the handshake, then data, the end, and lost last, on both sides. */
static int order_fn(void *arg, void **result)
{
    env_t e;
    env_init(&e, "server");
    e.pl.tmpl.keep = true;
    env_serve(&e, NULL);
    rec_t cli;
    rec_init(&cli);
    cli.keep = true;
    cio_transport_t *ct = await_ok(tls_connect(&cli, e.port, e.cctx, NULL, 0, 0));
    ck_assert_str_eq(cli.order, "M");
    ck_assert(cli.made_after_handshake);
    rec_t *sr = &e.pl.r[0];
    WAIT_UNTIL(e.pl.n == 1 && sr->made == 1);
    ck_assert(sr->made_after_handshake);
    ck_assert_int_eq(cio_transport_write(ct, "ping", 4), 0);
    WAIT_UNTIL(sr->nrx == 4);
    ck_assert_int_eq(cio_transport_write(sr->t, "bye", 3), 0);
    cio_transport_close(sr->t);
    WAIT_UNTIL(cli.lost == 1 && sr->lost == 1);
    ck_assert_str_eq((char *)cli.rx, "bye");
    ck_assert_str_eq(cli.order, "MDEL");
    ck_assert_str_eq(sr->order, "MDL");
    ck_assert_int_eq(cli.after_lost + sr->after_lost, 0);
    ASSERT_ERR(cli.lost_err, 0);
    ASSERT_ERR(sr->lost_err, 0);
    env_drained(&e, 1);
    env_fini(&e);
    rec_fini(&cli);
    return 0;
}

START_TEST(test_connection_made_follows_the_handshake_and_connection_lost_comes_last)
{
    ck_assert_int_eq(cio_run(order_fn, NULL, false, NULL), 0);
}
END_TEST

/* The client closes right after a write: the server gets the data, eof, then lost(0). */
static int client_closes_fn(void *arg, void **result)
{
    env_t e;
    env_init(&e, "server");
    e.pl.tmpl.keep = true;
    env_serve(&e, NULL);
    rec_t cli;
    rec_init(&cli);
    cio_transport_t *ct = await_ok(tls_connect(&cli, e.port, e.cctx, NULL, 0, 0));
    ck_assert_int_eq(cio_transport_write(ct, "last words", 10), 0);
    cio_transport_close(ct);
    ck_assert_int_eq(cli.lost, 0);
    WAIT_UNTIL(cli.lost == 1 && e.pl.n == 1 && e.pl.r[0].lost == 1);
    ASSERT_ERR(cli.lost_err, 0);
    ck_assert_str_eq(cli.order, "ML");
    ck_assert_str_eq((char *)e.pl.r[0].rx, "last words");
    ck_assert_str_eq(e.pl.r[0].order, "MDEL");
    ASSERT_ERR(e.pl.r[0].lost_err, 0);
    env_fini(&e);
    return 0;
}

START_TEST(test_a_client_close_is_eof_then_a_clean_loss_on_the_server)
{
    ck_assert_int_eq(cio_run(client_closes_fn, NULL, false, NULL), 0);
}
END_TEST

/* The server closes: the client gets eof, then lost(0). */
static int server_closes_fn(void *arg, void **result)
{
    env_t e;
    env_init(&e, "server");
    env_serve(&e, NULL);
    rec_t cli;
    rec_init(&cli);
    await_ok(tls_connect(&cli, e.port, e.cctx, NULL, 0, 0));
    WAIT_UNTIL(e.pl.n == 1 && e.pl.r[0].made == 1);
    cio_transport_close(e.pl.r[0].t);
    WAIT_UNTIL(cli.lost == 1 && e.pl.r[0].lost == 1);
    ck_assert_str_eq(cli.order, "MEL");
    ASSERT_ERR(cli.lost_err, 0);
    ck_assert_str_eq(e.pl.r[0].order, "ML");
    ASSERT_ERR(e.pl.r[0].lost_err, 0);
    env_fini(&e);
    return 0;
}

START_TEST(test_a_server_close_is_eof_then_a_clean_loss_on_the_client)
{
    ck_assert_int_eq(cio_run(server_closes_fn, NULL, false, NULL), 0);
}
END_TEST

/* A raw client: handshake, one echo (which also reads any session ticket), close(). */
static int truncated_by_client_fn(void *arg, void **result)
{
    env_t e;
    env_init(&e, "server");
    e.pl.tmpl.echo = true;
    env_serve(&e, NULL);
    SSL *ssl = raw_ssl(raw_connect(e.port, 0), false);
    raw_handshake(ssl);
    char buf[8];
    raw_ssl_write(ssl, "ping");
    raw_ssl_read(ssl, buf, 4);
    ck_assert_mem_eq(buf, "ping", 4);
    raw_ssl_drop(ssl);
    WAIT_UNTIL(e.pl.n == 1 && e.pl.r[0].lost == 1);
    ASSERT_ERR(e.pl.r[0].lost_err, CIO_ETLSTRUNCATED);
    ck_assert_str_eq(e.pl.r[0].order, "MDL");
    env_fini(&e);
    return 0;
}

START_TEST(test_a_client_gone_without_close_notify_is_lost_with_etlstruncated)
{
    ck_assert_int_eq(cio_run(truncated_by_client_fn, NULL, false, NULL), 0);
}
END_TEST

/* A raw server: handshake, one exchange, close(): the coreio client sees the same. */
static int truncated_by_server_fn(void *arg, void **result)
{
    SSL_CTX *cctx = client_ctx();
    char port[16];
    int l = raw_listen(port, sizeof(port), 0);
    rec_t cli;
    rec_init(&cli);
    cli.keep = true;
    cio_future_t *f = tls_connect(&cli, port, cctx, "localhost", 0, 0);
    ck_assert_ptr_nonnull(f);
    SSL *ssl = raw_ssl(raw_accept(l), true);
    raw_handshake(ssl);
    cio_transport_t *ct = await_ok(f);
    ck_assert_int_eq(cio_transport_write(ct, "ping", 4), 0);
    char buf[8];
    raw_ssl_read(ssl, buf, 4);
    raw_ssl_write(ssl, "pong");
    WAIT_UNTIL(cli.nrx == 4);
    raw_ssl_drop(ssl);
    WAIT_UNTIL(cli.lost == 1);
    ASSERT_ERR(cli.lost_err, CIO_ETLSTRUNCATED);
    ck_assert_str_eq((char *)cli.rx, "pong");
    ck_assert_str_eq(cli.order, "MDL");
    close(l);
    SSL_CTX_free(cctx);
    rec_fini(&cli);
    return 0;
}

START_TEST(test_a_server_gone_without_close_notify_is_lost_with_etlstruncated)
{
    ck_assert_int_eq(cio_run(truncated_by_server_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- refused certificates -------------------------------------------------- */

typedef struct refusal {
    const char *cert;   /* the server's */
    const char *cafile; /* the client's */
    int want;
} refusal_t;

static int refusal_fn(void *arg, void **result)
{
    const refusal_t *rc = arg;
    env_t e;
    env_init(&e, rc->cert);
    SSL_CTX_free(e.cctx);
    e.cctx = client_ctx_of(rc->cafile);
    env_serve(&e, NULL);
    rec_t cli;
    rec_init(&cli);
    int err = await_err(tls_connect(&cli, e.port, e.cctx, "localhost", 0, 0));
    ASSERT_ERR(err, rc->want);
    ck_assert_msg(strstr(cio_strerror(err), "certificate verify failed"), "%s", cio_strerror(err));
    /* The client's protocol is lost without connection_made; the server's side ends too. */
    WAIT_UNTIL(cli.lost == 1);
    ck_assert_str_eq(cli.order, "L");
    ASSERT_ERR(cli.lost_err, rc->want);
    env_drained(&e, 1);
    pool_all_refused(&e.pl);
    env_fini(&e);
    return 0;
}

START_TEST(test_an_expired_server_certificate_is_refused_with_etlsexpired)
{
    refusal_t rc = {"expired", "ca.pem", CIO_ETLSEXPIRED};
    ck_assert_int_eq(cio_run(refusal_fn, &rc, false, NULL), 0);
}
END_TEST

START_TEST(test_a_self_signed_server_certificate_is_refused_with_etlsselfsigned)
{
    /* OpenSSL's verdict is X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT. */
    refusal_t rc = {"selfsigned", "ca.pem", CIO_ETLSSELFSIGNED};
    ck_assert_int_eq(cio_run(refusal_fn, &rc, false, NULL), 0);
}
END_TEST

START_TEST(test_a_certificate_for_another_host_is_refused_with_etlshostname)
{
    refusal_t rc = {"wronghost", "ca.pem", CIO_ETLSHOSTNAME};
    ck_assert_int_eq(cio_run(refusal_fn, &rc, false, NULL), 0);
}
END_TEST

START_TEST(test_a_chain_from_an_untrusted_ca_is_refused_with_etlsunknownca)
{
    /* OpenSSL's verdict is X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: the root is not trusted. */
    refusal_t rc = {"server", "other-ca.pem", CIO_ETLSUNKNOWNCA};
    ck_assert_int_eq(cio_run(refusal_fn, &rc, false, NULL), 0);
}
END_TEST

/* The name checked is server_hostname when given, else the host connected to. */
static int hostname_fn(void *arg, void **result)
{
    env_t e;
    env_init(&e, "wronghost");
    env_serve(&e, NULL);
    rec_t cli, cli2;
    rec_init(&cli);
    rec_init(&cli2);
    cio_transport_t *ct = await_ok(tls_connect(&cli, e.port, e.cctx, "other.example", 0, 0));
    ck_assert(cli.made_after_handshake);
    cio_transport_close(ct);
    ASSERT_ERR(await_err(tls_connect(&cli2, e.port, e.cctx, NULL, 0, 0)), CIO_ETLSHOSTNAME);
    WAIT_UNTIL(cli.lost == 1 && cli2.lost == 1);
    ASSERT_ERR(cli.lost_err, 0);
    env_drained(&e, 2);
    env_fini(&e);
    return 0;
}

START_TEST(test_the_host_name_checked_is_server_hostname_or_else_the_host)
{
    ck_assert_int_eq(cio_run(hostname_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- client certificates ---------------------------------------------------- */

typedef struct client_cert_case {
    const char *cert; /* the client's (name without extension), or NULL */
    int version;      /* the client's, 0: any */
    bool required;
    int server_err; /* what the server protocol's connection_lost gets; 0: accepted */
} client_cert_case_t;

/* Accepted: the server's "peercert" is the client's certificate, or NULL without one. */
static void client_cert_accepted(env_t *e, rec_t *cli, const char *cert)
{
    ck_assert_int_eq(cio_transport_write(cli->t, "x", 1), 0);
    WAIT_UNTIL(cli->nrx == 1);
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(e->pl.r[0].t, "peercert", &info), 0);
    if (cert) {
        ck_assert_ptr_nonnull(info.object);
        char cn[64] = "";
        X509_NAME_get_text_by_NID(X509_get_subject_name(info.object), NID_commonName, cn,
                                  sizeof(cn));
        ck_assert_str_eq(cn, "client");
    } else {
        ck_assert_ptr_null(info.object);
    }
    cio_transport_close(cli->t);
    WAIT_UNTIL(cli->lost == 1 && e->pl.r[0].lost == 1);
    ASSERT_ERR(e->pl.r[0].lost_err, 0);
}

/*
 * Refused: TLS 1.2 refuses before the client's handshake is done; under TLS
 * 1.3 the client finishes first and the server's alert follows, so the
 * client may see the connection made, then lost. The server's protocol is
 * lost without connection_made, with @p server_err.
 */
static void client_cert_refused(env_t *e, rec_t *cli, int err, int version, int server_err)
{
    if (version == TLS1_2_VERSION || err != 0)
        ASSERT_TLS_ERR(err);
    WAIT_UNTIL(cli->lost == 1);
    ASSERT_TLS_ERR(cli->lost_err);
    ck_assert_uint_eq(cli->nrx, 0);
    if (version == TLS1_2_VERSION)
        ck_assert_str_eq(cli->order, "L");
    env_drained(e, 1);
    ck_assert_int_eq(e->pl.n, 1);
    ASSERT_ERR(pool_all_refused(&e->pl), server_err);
}

static void check_client_cert(const client_cert_case_t *cc)
{
    env_t e;
    env_init(&e, "server");
    ck_assert_int_eq(cio_tls_context_verify_clients(e.sctx, pki("ca.pem"), cc->required), 0);
    if (cc->cert)
        use_client_cert(e.cctx, cc->cert);
    if (cc->version)
        force_version(e.cctx, cc->version);
    e.pl.tmpl.echo = true;
    env_serve(&e, NULL);
    rec_t cli;
    rec_init(&cli);
    cio_future_t *f = tls_connect(&cli, e.port, e.cctx, NULL, 0, 0);
    ck_assert_ptr_nonnull(f);
    int err = cio_await(f, NULL);
    cio_future_unref(f);
    if (cc->server_err == 0) {
        ASSERT_ERR(err, 0);
        client_cert_accepted(&e, &cli, cc->cert);
    } else {
        client_cert_refused(&e, &cli, err, cc->version, cc->server_err);
    }
    env_fini(&e);
    rec_fini(&cli);
}

static int client_certs_fn(void *arg, void **result)
{
    static const client_cert_case_t cases[] = {
        {NULL, TLS1_2_VERSION, true, CIO_ETLSNOPEERCERT},
        {NULL, TLS1_3_VERSION, true, CIO_ETLSNOPEERCERT},
        {"client-self", TLS1_2_VERSION, true, CIO_ETLSSELFSIGNED},
        {"client-self", TLS1_3_VERSION, true, CIO_ETLSSELFSIGNED},
        {"client", 0, true, 0},
        {"client", TLS1_2_VERSION, true, 0},
        {NULL, 0, false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_client_cert(&cases[i]);
    return 0;
}

START_TEST(test_a_server_requiring_client_certificates_accepts_only_ca_signed_ones)
{
    ck_assert_int_eq(cio_run(client_certs_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- timeouts ---------------------------------------------------------------- */

/* A silent client is dropped at the timeout, long before the 60 s default. */
static int server_handshake_timeout_fn(void *arg, void **result)
{
    env_t e;
    env_init(&e, "server");
    cio_server_opts_t so = {.ssl_handshake_timeout = 0.3};
    env_serve(&e, &so);
    int fd = raw_connect(e.port, 0);
    double t0 = now();
    uint8_t buf[4096];
    ck_assert_uint_eq(raw_read_to_eof(fd, buf, sizeof(buf)), 0);
    ck_assert_double_ge(now() - t0, 0.25);
    close(fd);
    env_drained(&e, 1);
    if (e.pl.n > 0)
        ASSERT_ERR(pool_all_refused(&e.pl), CIO_ETLSHANDSHAKETIMEOUT);
    env_fini(&e);
    return 0;
}

START_TEST(test_a_server_drops_a_client_that_does_not_handshake_in_time)
{
    ck_assert_int_eq(cio_run(server_handshake_timeout_fn, NULL, false, NULL), 0);
}
END_TEST

/* A server that accepts and never answers: create_connection fails at the timeout. */
static int client_handshake_timeout_fn(void *arg, void **result)
{
    SSL_CTX *cctx = client_ctx();
    char port[16];
    int l = raw_listen(port, sizeof(port), 0);
    rec_t cli;
    rec_init(&cli);
    cio_future_t *f = tls_connect(&cli, port, cctx, NULL, 0.3, 0);
    ck_assert_ptr_nonnull(f);
    double t0 = now();
    int fd = raw_accept(l);
    ASSERT_ERR(await_err(f), CIO_ETLSHANDSHAKETIMEOUT);
    ck_assert_double_ge(now() - t0, 0.25);
    WAIT_UNTIL(cli.lost == 1);
    ck_assert_str_eq(cli.order, "L");
    ASSERT_ERR(cli.lost_err, CIO_ETLSHANDSHAKETIMEOUT);
    /* The raw server got a ClientHello (a handshake record), then the end. */
    uint8_t buf[4096];
    size_t n = raw_read_to_eof(fd, buf, sizeof(buf));
    ck_assert_uint_gt(n, 5);
    ck_assert_uint_eq(buf[0], 0x16);
    close(fd);
    close(l);
    SSL_CTX_free(cctx);
    return 0;
}

START_TEST(test_create_connection_fails_with_etlshandshaketimeout_when_the_server_is_silent)
{
    ck_assert_int_eq(cio_run(client_handshake_timeout_fn, NULL, false, NULL), 0);
}
END_TEST

/* Inside a task: write @p len bytes @p t cannot send now, close, and time the loss. */
static void close_stuck(cio_transport_t *t, rec_t *r, const uint8_t *buf, size_t len)
{
    ck_assert_int_eq(cio_transport_write(t, buf, len), 0);
    spin(10);
    ck_assert_uint_gt(cio_transport_get_write_buffer_size(t), 0);
    double t0 = now();
    cio_transport_close(t);
    WAIT_UNTIL(r->lost == 1);
    ck_assert_double_ge(now() - t0, 0.25);
    ASSERT_ERR(r->lost_err, CIO_ETLSSHUTDOWNTIMEOUT);
}

/*
 * close() with megabytes a peer never reads: the shutdown timeout aborts the
 * transport. The peer's small receive buffer keeps the kernel from taking it.
 */
static int client_shutdown_timeout_fn(void *arg, void **result)
{
    SSL_CTX *cctx = client_ctx();
    uint8_t *buf = calloc(1, 16 * MIB);
    ck_assert_ptr_nonnull(buf);
    char port[16];
    int l = raw_listen(port, sizeof(port), 16 * KIB);
    rec_t cli;
    rec_init(&cli);
    cio_future_t *f = tls_connect(&cli, port, cctx, "localhost", 0, 0.3);
    ck_assert_ptr_nonnull(f);
    SSL *ssl = raw_ssl(raw_accept(l), true);
    raw_handshake(ssl);
    close_stuck(await_ok(f), &cli, buf, 16 * MIB);
    raw_ssl_drop(ssl);
    close(l);
    free(buf);
    SSL_CTX_free(cctx);
    return 0;
}

START_TEST(test_a_client_close_a_server_never_reads_aborts_at_the_shutdown_timeout)
{
    ck_assert_int_eq(cio_run(client_shutdown_timeout_fn, NULL, false, NULL), 0);
}
END_TEST

static int server_shutdown_timeout_fn(void *arg, void **result)
{
    env_t e;
    env_init(&e, "server");
    cio_server_opts_t so = {.ssl_shutdown_timeout = 0.3};
    env_serve(&e, &so);
    uint8_t *buf = calloc(1, 16 * MIB);
    ck_assert_ptr_nonnull(buf);
    SSL *ssl = raw_ssl(raw_connect(e.port, 16 * KIB), false);
    raw_handshake(ssl);
    WAIT_UNTIL(e.pl.n == 1 && e.pl.r[0].made == 1);
    close_stuck(e.pl.r[0].t, &e.pl.r[0], buf, 16 * MIB);
    raw_ssl_drop(ssl);
    env_drained(&e, 1);
    free(buf);
    env_fini(&e);
    return 0;
}

START_TEST(test_a_server_close_a_client_never_reads_aborts_at_the_shutdown_timeout)
{
    ck_assert_int_eq(cio_run(server_shutdown_timeout_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- peers that do not speak TLS ---------------------------------------------- */

static int plaintext_fn(void *arg, void **result)
{
    env_t e;
    env_init(&e, "server");
    env_serve(&e, NULL);
    int fd = raw_connect(e.port, 0);
    const char *req = "GET / HTTP/1.0\r\n\r\n";
    raw_send(fd, req, strlen(req));
    uint8_t buf[4096];
    size_t n = raw_read_to_eof(fd, buf, sizeof(buf));
    /* Nothing, or a TLS alert record; never the request in clear. */
    if (n > 0)
        ck_assert_msg(buf[0] == 0x15, "the server answered with 0x%02x, not an alert", buf[0]);
    ck_assert_ptr_null(memmem(buf, n, "GET", 3));
    ck_assert_ptr_null(memmem(buf, n, "HTTP", 4));
    close(fd);
    env_drained(&e, 1);
    if (e.pl.n > 0)
        ASSERT_ERR(pool_all_refused(&e.pl), CIO_ETLSNOTTLS);
    env_fini(&e);
    return 0;
}

START_TEST(test_plaintext_to_a_tls_server_is_never_echoed_and_fails_with_etlsnottls)
{
    ck_assert_int_eq(cio_run(plaintext_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- start_tls ---------------------------------------------------------------- */

/* A STARTTLS server: the plain protocol reads one line, answers OK and upgrades. */
typedef struct stls {
    rec_t plain; /* first: the plain protocol; keeps what it saw */
    rec_t tls;   /* the protocol after the upgrade (echoes) */
    SSL_CTX *ctx;
    cio_server_t *s;
    char port[16];
    bool upgraded;
    size_t after_upgrade; /* bytes given to the plain protocol after the line */
    size_t initial_len;   /* bytes of the TLS stream handed to start_tls */
    cio_future_t *fut;
    bool fut_done;
    int fut_err;
    void *fut_result;
} stls_t;

static int stls_done(cio_future_t *f, void *arg)
{
    stls_t *s = arg;
    s->fut_done = true;
    s->fut_err = cio_future_result(f, &s->fut_result);
    return 0;
}

static int stls_upgrade(stls_t *s, const uint8_t *rest, size_t restlen)
{
    s->upgraded = true;
    s->initial_len = restlen;
    int rc = cio_transport_write(s->plain.t, "OK\r\n", 4);
    if (rc < 0)
        return rc;
    cio_tls_opts_t o = {.initial_data = rest, .initial_len = restlen};
    s->fut = cio_loop_start_tls(cio_transport_get_loop(s->plain.t), s->plain.t, &s->tls.base,
                                s->ctx, true, NULL, &o);
    if (!s->fut)
        return -EINVAL;
    return cio_future_add_done_callback(s->fut, stls_done, s);
}

static int stls_data(cio_protocol_t *p, const void *data, size_t len)
{
    stls_t *s = (stls_t *)p;
    const uint8_t *d = data;
    note(&s->plain, 'D');
    s->plain.datas++;
    if (s->upgraded) {
        s->after_upgrade += len;
        rec_take(&s->plain, d, len);
        return 0;
    }
    /* Take the line byte by byte: what follows it is the TLS stream's. */
    for (size_t i = 0; i < len; i++) {
        rec_take(&s->plain, d + i, 1);
        if (s->plain.nrx >= 2 && memcmp(s->plain.rx + s->plain.nrx - 2, "\r\n", 2) == 0)
            return stls_upgrade(s, d + i + 1, len - i - 1);
    }
    return 0;
}

static const cio_protocol_ops_t stls_ops = {
    .connection_made = rec_made,
    .connection_lost = rec_lost,
    .data_received = stls_data,
    .eof_received = rec_eof,
};

/* Inside a task: a plain server on 127.0.0.1 whose one connection is @p s. */
static void stls_start(stls_t *s)
{
    memset(s, 0, sizeof(*s));
    rec_init(&s->plain);
    s->plain.base.ops = &stls_ops;
    s->plain.keep = true;
    rec_init(&s->tls);
    s->tls.echo = true;
    s->ctx = server_ctx_of("server.pem", "server.key");
    s->s = await_ok(cio_loop_create_server(cio_get_running_loop(), static_factory, &s->plain.base,
                                           "127.0.0.1", "0", NULL));
    port_of_server(s->s, s->port, sizeof(s->port));
}

/* The server upgraded, and its plain protocol saw nothing past the line. */
static void check_upgraded(stls_t *s)
{
    WAIT_UNTIL(s->fut_done);
    ASSERT_ERR(s->fut_err, 0);
    ck_assert_ptr_eq(s->fut_result, s->plain.t);
    ck_assert_str_eq((char *)s->plain.rx, "STARTTLS\r\n");
    ck_assert_uint_eq(s->after_upgrade, 0);
    ck_assert_int_eq(s->tls.made, 1);
    ck_assert(s->tls.made_after_handshake);
    ck_assert_ptr_eq(s->tls.t, s->plain.t);
}

static void stls_fini(stls_t *s)
{
    cio_server_free(s->s);
    SSL_CTX_free(s->ctx);
    if (s->fut)
        cio_future_unref(s->fut);
    rec_fini(&s->plain);
    rec_fini(&s->tls);
}

/* Both sides coreio: the client upgrades once it has read "OK\r\n". */
static int starttls_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    SSL_CTX *cctx = client_ctx();
    stls_t st;
    stls_start(&st);
    rec_t plain, tls;
    rec_init(&plain);
    rec_init(&tls);
    plain.keep = tls.keep = true;
    cio_transport_t *ct = await_ok(
        cio_loop_create_connection(loop, static_factory, &plain, "127.0.0.1", st.port, NULL));
    ck_assert_int_eq(cio_transport_write(ct, "STARTTLS\r\n", 10), 0);
    WAIT_UNTIL(plain.nrx == 4);
    ck_assert_str_eq((char *)plain.rx, "OK\r\n");
    cio_transport_t *t2 =
        await_ok(cio_loop_start_tls(loop, ct, &tls.base, cctx, false, "localhost", NULL));
    ck_assert_ptr_eq(t2, ct);
    ck_assert_str_eq(tls.order, "M");
    ck_assert(tls.made_after_handshake);
    check_tls_info(ct, cctx, TLS1_3_VERSION, true);
    ck_assert_int_eq(cio_transport_write(ct, "hello after starttls", 20), 0);
    WAIT_UNTIL(tls.nrx == 20);
    ck_assert_str_eq((char *)tls.rx, "hello after starttls");
    check_upgraded(&st);
    cio_transport_close(ct);
    WAIT_UNTIL(tls.lost == 1 && st.tls.lost == 1);
    ASSERT_ERR(tls.lost_err, 0);
    /* The plain protocols heard nothing after the upgrade. */
    ck_assert_uint_eq(plain.nrx, 4);
    ck_assert_str_eq(plain.order, "MD");
    ck_assert_str_eq(st.plain.order, "MD");
    SSL_CTX_free(cctx);
    stls_fini(&st);
    rec_fini(&plain);
    rec_fini(&tls);
    return 0;
}

START_TEST(test_start_tls_upgrades_both_coreio_sides_of_a_plain_connection)
{
    ck_assert_int_eq(cio_run(starttls_fn, NULL, false, NULL), 0);
}
END_TEST

/*
 * A raw client sends "STARTTLS\r\n" and its ClientHello together, in one
 * write (@p arg false) or one byte per segment (true).
 */
static int starttls_raw_fn(void *arg, void **result)
{
    bool bytewise = *(bool *)arg;
    stls_t st;
    stls_start(&st);
    memtls_t m;
    memtls_init(&m);
    ck_assert_int_eq(SSL_do_handshake(m.ssl), -1);
    uint8_t msg[4096];
    memcpy(msg, "STARTTLS\r\n", 10);
    size_t n = 10 + memtls_take(&m, msg + 10, sizeof(msg) - 10);
    ck_assert_uint_gt(n, 10 + 40);
    int fd = raw_connect(st.port, 0);
    for (size_t i = 0; i < n; i += bytewise ? 1 : n) {
        raw_send(fd, msg + i, bytewise ? 1 : n);
        spin(2);
    }
    /* "OK\r\n" in clear first; the rest is TLS. */
    uint8_t ok[4];
    raw_read_exact(fd, ok, 4);
    ck_assert_mem_eq(ok, "OK\r\n", 4);
    memtls_handshake(&m, fd);
    memtls_echo(&m, fd, "hello after starttls");
    check_upgraded(&st);
    /* The case meant happened: the ClientHello came with the line, or the line in pieces. */
    if (bytewise)
        ck_assert_int_gt(st.plain.datas, 1);
    else
        ck_assert_uint_eq(st.initial_len, n - 10);
    /* close_notify: the server sees eof and a clean loss. */
    ck_assert_int_ge(SSL_shutdown(m.ssl), 0);
    memtls_flush(&m, fd);
    WAIT_UNTIL(st.tls.lost == 1);
    ck_assert_str_eq(st.tls.order, "MDEL");
    ASSERT_ERR(st.tls.lost_err, 0);
    ck_assert_str_eq(st.plain.order, "MD");
    close(fd);
    SSL_free(m.ssl);
    stls_fini(&st);
    return 0;
}

START_TEST(test_start_tls_takes_a_client_hello_sent_in_the_same_write_as_starttls)
{
    bool bytewise = false;
    ck_assert_int_eq(cio_run(starttls_raw_fn, &bytewise, false, NULL), 0);
}
END_TEST

START_TEST(test_start_tls_takes_starttls_and_the_client_hello_one_byte_at_a_time)
{
    bool bytewise = true;
    ck_assert_int_eq(cio_run(starttls_raw_fn, &bytewise, false, NULL), 0);
}
END_TEST

/* Plaintext pipelined after STARTTLS goes to TLS, which refuses it; nothing is echoed. */
static int starttls_smuggle_fn(void *arg, void **result)
{
    stls_t st;
    stls_start(&st);
    int fd = raw_connect(st.port, 0);
    const char *msg = "STARTTLS\r\nHELLO-PLAINTEXT";
    raw_send(fd, msg, strlen(msg));
    uint8_t buf[4096];
    size_t n = raw_read_to_eof(fd, buf, sizeof(buf));
    ck_assert_uint_ge(n, 4);
    ck_assert_mem_eq(buf, "OK\r\n", 4);
    if (n > 4)
        ck_assert_msg(buf[4] == 0x15, "after OK: 0x%02x, not an alert", buf[4]);
    ck_assert_ptr_null(memmem(buf, n, "HELLO", 5));
    WAIT_UNTIL(st.fut_done);
    ASSERT_ERR(st.fut_err, CIO_ETLSNOTTLS);
    ck_assert_uint_eq(st.initial_len, strlen("HELLO-PLAINTEXT"));
    ck_assert_str_eq((char *)st.plain.rx, "STARTTLS\r\n");
    ck_assert_uint_eq(st.after_upgrade, 0);
    /* The TLS protocol is lost without connection_made; the plain one hears nothing more. */
    WAIT_UNTIL(st.tls.lost == 1);
    ck_assert_str_eq(st.tls.order, "L");
    ASSERT_ERR(st.tls.lost_err, CIO_ETLSNOTTLS);
    ck_assert_str_eq(st.plain.order, "MD");
    WAIT_UNTIL(cio_server_active_connections(st.s) == 0);
    close(fd);
    stls_fini(&st);
    return 0;
}

START_TEST(test_plaintext_pipelined_after_starttls_is_never_seen_by_the_plain_protocol)
{
    ck_assert_int_eq(cio_run(starttls_smuggle_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- arguments ------------------------------------------------------------------ */

/* start_tls on a plain stream with bad arguments, on a closing one, on a datagram one. */
static int start_tls_args_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    SSL_CTX *cctx = client_ctx();
    rec_t p, plain, dg;
    rec_init(&p);
    rec_init(&plain);
    rec_init(&dg);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cio_transport_t *pt =
        await_ok(cio_loop_connect_accepted_socket(loop, static_factory, &plain, sv[0], NULL));
    ck_assert_ptr_null(cio_loop_start_tls(loop, pt, &p.base, NULL, false, NULL, NULL));
    ck_assert_ptr_null(cio_loop_start_tls(loop, NULL, &p.base, cctx, false, NULL, NULL));
    cio_tls_opts_t neg = {.handshake_timeout = -1};
    ck_assert_ptr_null(cio_loop_start_tls(loop, pt, &p.base, cctx, false, NULL, &neg));
    neg = (cio_tls_opts_t){.shutdown_timeout = -1};
    ck_assert_ptr_null(cio_loop_start_tls(loop, pt, &p.base, cctx, false, NULL, &neg));
    ck_assert(cio_transport_can_write_eof(pt));
    cio_transport_close(pt);
    ck_assert_ptr_null(cio_loop_start_tls(loop, pt, &p.base, cctx, false, NULL, NULL));
    WAIT_UNTIL(plain.lost == 1);
    close(sv[1]);
    cio_datagram_opts_t dopts = {.local_host = "127.0.0.1", .local_port = "0"};
    cio_transport_t *dt =
        await_ok(cio_loop_create_datagram_endpoint(loop, static_factory, &dg, &dopts));
    ck_assert_ptr_null(cio_loop_start_tls(loop, dt, &p.base, cctx, false, NULL, NULL));
    cio_transport_close(dt);
    WAIT_UNTIL(dg.lost == 1);
    ck_assert_int_eq(p.made + p.lost, 0);
    SSL_CTX_free(cctx);
    return 0;
}

START_TEST(test_start_tls_returns_null_for_bad_arguments)
{
    ck_assert_int_eq(cio_run(start_tls_args_fn, NULL, false, NULL), 0);
}
END_TEST

/* A TLS transport: no second start_tls, no half-close, and it still works after. */
static int tls_transport_args_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    env_t e;
    env_init(&e, "server");
    env_serve(&e, NULL);
    rec_t p, cli;
    rec_init(&p);
    rec_init(&cli);
    cio_transport_t *ct = await_ok(tls_connect(&cli, e.port, e.cctx, NULL, 0, 0));
    ck_assert_ptr_null(cio_loop_start_tls(loop, ct, &p.base, e.cctx, false, NULL, NULL));
    ck_assert(!cio_transport_can_write_eof(ct));
    ck_assert_int_eq(cio_transport_write_eof(ct), -ENOTSUP);
    WAIT_UNTIL(e.pl.n == 1 && e.pl.r[0].made == 1);
    ck_assert(!cio_transport_can_write_eof(e.pl.r[0].t));
    ck_assert_int_eq(cio_transport_write_eof(e.pl.r[0].t), -ENOTSUP);
    ck_assert_int_eq(cio_transport_write(e.pl.r[0].t, "still", 5), 0);
    WAIT_UNTIL(cli.nrx == 5);
    cio_transport_close(ct);
    WAIT_UNTIL(cli.lost == 1 && e.pl.r[0].lost == 1);
    ASSERT_ERR(cli.lost_err, 0);
    ck_assert_int_eq(p.made + p.lost, 0);
    env_fini(&e);
    return 0;
}

START_TEST(test_a_tls_transport_refuses_start_tls_and_write_eof)
{
    ck_assert_int_eq(cio_run(tls_transport_args_fn, NULL, false, NULL), 0);
}
END_TEST

START_TEST(test_context_helpers_report_unreadable_and_mismatched_files)
{
    SSL_CTX *ctx = NULL;
    const char *missing = "/nonexistent/coreio-test.pem";
    ASSERT_ERR(cio_tls_server_context(&ctx, missing, pki("server.key")), -ENOENT);
    ASSERT_ERR(cio_tls_server_context(&ctx, pki("server.pem"), missing), -ENOENT);
    ASSERT_ERR(cio_tls_server_context(&ctx, pki("server.pem"), pki("client.key")),
               CIO_ETLSKEYMISMATCH);
    ASSERT_ERR(cio_tls_server_context(&ctx, pki("openssl.cnf"), pki("server.key")),
               CIO_ETLSBADCERT);
    ASSERT_ERR(cio_tls_server_context(&ctx, "/dev/null", pki("server.key")), CIO_ETLSBADCERT);
    ASSERT_ERR(cio_tls_server_context(&ctx, pki("server.pem"), pki("openssl.cnf")), CIO_ETLSBADKEY);
    ck_assert_ptr_null(ctx);
    int rc = cio_tls_client_context(&ctx, missing);
    ck_assert_msg(rc == CIO_ETLSBADCA || rc == -ENOENT, "%s", cio_err_name(rc));
    ASSERT_ERR(cio_tls_client_context(&ctx, pki("openssl.cnf")), CIO_ETLSBADCA);
    ck_assert_ptr_null(ctx);
    /* NULL: the system's trust store. */
    ASSERT_ERR(cio_tls_client_context(&ctx, NULL), 0);
    ck_assert_ptr_nonnull(ctx);
    SSL_CTX_free(ctx);
    ctx = NULL;
    ASSERT_ERR(cio_tls_server_context(&ctx, pki("server.pem"), pki("server.key")), 0);
    ASSERT_ERR(cio_tls_context_verify_clients(ctx, missing, true), -ENOENT);
    ASSERT_ERR(cio_tls_context_verify_clients(ctx, pki("openssl.cnf"), true), CIO_ETLSBADCA);
    ASSERT_ERR(cio_tls_context_verify_clients(NULL, pki("ca.pem"), true), -EINVAL);
    ASSERT_ERR(cio_tls_context_verify_clients(ctx, pki("ca.pem"), true), 0);
    SSL_CTX_free(ctx);
    /* The refusals' messages say what failed. */
    const int verify[] = {CIO_ETLSVERIFY,      CIO_ETLSHOSTNAME,  CIO_ETLSEXPIRED,
                          CIO_ETLSNOTYETVALID, CIO_ETLSUNKNOWNCA, CIO_ETLSSELFSIGNED,
                          CIO_ETLSNOPEERCERT};
    for (size_t i = 0; i < sizeof(verify) / sizeof(verify[0]); i++)
        ck_assert_ptr_nonnull(strstr(cio_strerror(verify[i]), "certificate verify failed"));
}
END_TEST

/* ---- many connections -------------------------------------------------------------- */

#define NCONN   200
static int many_fn(void *arg, void **result)
{
    SSL_CTX *sctx = server_ctx(), *cctx = client_ctx();
    cio_server_opts_t so = {.ssl = sctx};
    cio_connection_opts_t co = {.ssl = cctx};
    many_echo(NCONN, &so, &co);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return 0;
}

START_TEST(test_two_hundred_concurrent_tls_connections_echo_on_one_loop)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 1024) {
        rl.rlim_cur = rl.rlim_max;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    ck_assert_int_eq(cio_run(many_fn, NULL, false, NULL), 0);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = cio_test_case("tls");
    tcase_add_unchecked_fixture(tc, pki_setup, NULL);
    CIO_TEST(tc, test_tls12_handshake_echoes_and_reports_cipher_and_certificates);
    CIO_TEST(tc, test_tls13_handshake_echoes_and_reports_cipher_and_certificates);
    CIO_TEST(tc, test_tls12_handshake_with_an_rsa_certificate_echoes);
    CIO_TEST(tc, test_tls_echoes_over_a_unix_server);
    CIO_TEST(tc, test_an_accepted_socket_becomes_the_server_side_of_tls);
    CIO_TEST(tc, test_ten_megabytes_echo_intact_under_flow_control);
    CIO_TEST(tc, test_paused_reading_holds_plaintext_and_delivers_it_in_order_after_resume);
    CIO_TEST(tc, test_sendfile_over_tls_takes_the_read_write_path);
    CIO_TEST(tc, test_a_client_resumes_the_session_it_is_given);
    CIO_TEST(tc, test_a_client_that_never_completes_the_handshake_never_gets_connection_made);
    CIO_TEST(tc, test_connection_made_follows_the_handshake_and_connection_lost_comes_last);
    CIO_TEST(tc, test_a_client_close_is_eof_then_a_clean_loss_on_the_server);
    CIO_TEST(tc, test_a_server_close_is_eof_then_a_clean_loss_on_the_client);
    CIO_TEST(tc, test_a_client_gone_without_close_notify_is_lost_with_etlstruncated);
    CIO_TEST(tc, test_a_server_gone_without_close_notify_is_lost_with_etlstruncated);
    CIO_TEST(tc, test_an_expired_server_certificate_is_refused_with_etlsexpired);
    CIO_TEST(tc, test_a_self_signed_server_certificate_is_refused_with_etlsselfsigned);
    CIO_TEST(tc, test_a_certificate_for_another_host_is_refused_with_etlshostname);
    CIO_TEST(tc, test_a_chain_from_an_untrusted_ca_is_refused_with_etlsunknownca);
    CIO_TEST(tc, test_the_host_name_checked_is_server_hostname_or_else_the_host);
    CIO_TEST(tc, test_a_server_requiring_client_certificates_accepts_only_ca_signed_ones);
    CIO_TEST(tc, test_a_server_drops_a_client_that_does_not_handshake_in_time);
    CIO_TEST(tc, test_create_connection_fails_with_etlshandshaketimeout_when_the_server_is_silent);
    CIO_TEST(tc, test_a_client_close_a_server_never_reads_aborts_at_the_shutdown_timeout);
    CIO_TEST(tc, test_a_server_close_a_client_never_reads_aborts_at_the_shutdown_timeout);
    CIO_TEST(tc, test_plaintext_to_a_tls_server_is_never_echoed_and_fails_with_etlsnottls);
    CIO_TEST(tc, test_start_tls_upgrades_both_coreio_sides_of_a_plain_connection);
    CIO_TEST(tc, test_start_tls_takes_a_client_hello_sent_in_the_same_write_as_starttls);
    CIO_TEST(tc, test_start_tls_takes_starttls_and_the_client_hello_one_byte_at_a_time);
    CIO_TEST(tc, test_plaintext_pipelined_after_starttls_is_never_seen_by_the_plain_protocol);
    CIO_TEST(tc, test_start_tls_returns_null_for_bad_arguments);
    CIO_TEST(tc, test_a_tls_transport_refuses_start_tls_and_write_eof);
    CIO_TEST(tc, test_context_helpers_report_unreadable_and_mismatched_files);
    CIO_TEST(tc, test_two_hundred_concurrent_tls_connections_echo_on_one_loop);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
