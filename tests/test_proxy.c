/*
 * tests/test_proxy.c: the PROXY protocol stage of accepted stream transports
 * (coreio/proxy.h, loop/proxy.c) end to end, with python3 as the load
 * balancer (tests/proxy_peer.py builds the headers itself). A recording
 * protocol keeps, for each connection, what get_extra_info told it at
 * connection_made ("peername", "sockname", "socket_peername",
 * "socket_sockname", "proxy" and its TLVs), every byte it received (and echoes
 * them, which is how python knows they arrived) and how it ended. Covered:
 * every kind of v1 and v2 header, TLVs read back byte for byte, the header
 * and the first request cut at every byte boundary or sent a byte at a time,
 * TLS after the header (split, or coalesced with the ClientHello), the
 * refusals (untrusted, malformed, missing, wrong version, EOF, timeout) with
 * their log lines and its rate limit, a bad peer beside a good connection,
 * the caller's options copied at the call, and sharded servers (REUSEPORT and
 * HANDOFF).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "coreio/proxy.h"
#include "coreio/tls.h"
#include "pyrun.h"
#include "testutil.h"

#define MAX_RECS     1024
#define REQ          "hello world\n"
#define V1_TCP4      "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n" /* as proxy_peer.py's */
#define V2_TLVS6_LEN (16 + 36 + 97) /* proxy_peer.py V2_TLVS6: fixed part, IPv6 block, TLVS */

/*
 * Inside a task: let the loop run until @p cond holds. The deadline only keeps
 * a broken build from hanging; passing runs take milliseconds.
 */
#define WAIT_UNTIL(cond)                                                                           \
    do {                                                                                           \
        double until_ = cio_loop_time(cio_get_running_loop()) + 10.0;                              \
        while (!(cond) && cio_loop_time(cio_get_running_loop()) < until_)                          \
            cio_sleep(0.002);                                                                      \
        ck_assert_msg((cond), "timed out waiting for %s", #cond);                                  \
    } while (0)

/* ---- what each connection's protocol saw ---------------------------------------------- */

typedef struct rec {
    int made, eof, lost, lost_err;
    int worker;     /* sharded servers: the worker whose loop served it */
    double lost_at; /* loop time of connection_lost */
    char peer[160], sock[160], speer[160], ssock[160];
    bool tls; /* "cipher" answered: the connection speaks TLS */
    int proxy_rc;
    uint8_t version;
    bool local, has_tlvs;
    int socktype;
    uint8_t tlvs[256];
    size_t tlvs_len;
    int noop_rc; /* the NOOP TLV, looked up in the live header */
    size_t noop_len;
    char data[512];
    size_t len;
    bool overflow;
} rec_t;

/* The records of every connection a factory made, in the order it made them. */
typedef struct rig {
    pthread_mutex_t mu; /* sharded servers call the factory on every worker */
    rec_t *recs;
    int n, lost;
    cio_workers_t *w;
} rig_t;

typedef struct conn {
    cio_protocol_t base;
    rig_t *rig;
    rec_t *rec;
    cio_transport_t *t;
} conn_t;

static void rig_init(rig_t *rig)
{
    memset(rig, 0, sizeof(*rig));
    ck_assert_int_eq(pthread_mutex_init(&rig->mu, NULL), 0);
    rig->recs = calloc(MAX_RECS, sizeof(*rig->recs));
    ck_assert_ptr_nonnull(rig->recs);
}

static void rig_free(rig_t *rig)
{
    pthread_mutex_destroy(&rig->mu);
    free(rig->recs);
}

/* How many connections have ended (their protocol told and freed). */
static int rig_lost(rig_t *rig)
{
    pthread_mutex_lock(&rig->mu);
    int lost = rig->lost;
    pthread_mutex_unlock(&rig->mu);
    return lost;
}

/* "HOST:PORT", "[HOST]:PORT", "unix:PATH" ("unix:" unnamed, "unix:@NAME" abstract). */
static void addr_text(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const void *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        snprintf(out, n, "%s:%u", host, ntohs(sin->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const void *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        snprintf(out, n, "[%s]:%u", host, ntohs(sin6->sin6_port));
    } else if (ss->ss_family == AF_UNIX) {
        const struct sockaddr_un *sun = (const void *)ss;
        size_t at = offsetof(struct sockaddr_un, sun_path), plen = len > at ? len - at : 0;
        if (plen && sun->sun_path[0] == '\0')
            snprintf(out, n, "unix:@%.*s", (int)plen - 1, sun->sun_path + 1);
        else
            snprintf(out, n, "unix:%.*s", (int)strnlen(sun->sun_path, plen), sun->sun_path);
    } else {
        snprintf(out, n, "family %d", ss->ss_family);
    }
}

static void info_text(cio_transport_t *t, const char *name, char *out, size_t n)
{
    cio_extra_info_t info;
    int rc = cio_transport_get_extra_info(t, name, &info);
    if (rc < 0)
        snprintf(out, n, "(%s)", cio_err_name(rc));
    else
        addr_text(&info.addr, info.addrlen, out, n);
}

static int conn_made(cio_protocol_t *p, cio_transport_t *t)
{
    conn_t *c = (conn_t *)p;
    rec_t *r = c->rec;
    c->t = t;
    r->made++;
    info_text(t, "peername", r->peer, sizeof(r->peer));
    info_text(t, "sockname", r->sock, sizeof(r->sock));
    info_text(t, "socket_peername", r->speer, sizeof(r->speer));
    info_text(t, "socket_sockname", r->ssock, sizeof(r->ssock));
    cio_extra_info_t info;
    r->tls = cio_transport_get_extra_info(t, "cipher", &info) == 0;
    r->proxy_rc = cio_transport_get_extra_info(t, "proxy", &info);
    if (r->proxy_rc == 0) {
        const cio_proxy_header_t *h = info.object;
        r->version = h->version;
        r->local = h->local;
        r->socktype = h->socktype;
        r->has_tlvs = h->tlvs != NULL;
        r->tlvs_len = h->tlvs_len;
        if (h->tlvs && h->tlvs_len <= sizeof(r->tlvs))
            memcpy(r->tlvs, h->tlvs, h->tlvs_len);
        r->noop_rc = cio_proxy_tlv(h, CIO_PP2_TYPE_NOOP, NULL, &r->noop_len);
    }
    return 0;
}

/* Keep the bytes, and echo them: the peer then knows they arrived. */
static int conn_data(cio_protocol_t *p, const void *data, size_t len)
{
    conn_t *c = (conn_t *)p;
    rec_t *r = c->rec;
    if (r->len + len > sizeof(r->data))
        r->overflow = true;
    else
        memcpy(r->data + r->len, data, len);
    r->len += len;
    return cio_transport_write(c->t, data, len);
}

static int conn_eof(cio_protocol_t *p)
{
    ((conn_t *)p)->rec->eof++;
    return 0;
}

static void conn_lost(cio_protocol_t *p, int err)
{
    conn_t *c = (conn_t *)p;
    c->rec->lost++;
    c->rec->lost_err = err;
    c->rec->lost_at = cio_loop_time(cio_get_running_loop());
    pthread_mutex_lock(&c->rig->mu);
    c->rig->lost++;
    pthread_mutex_unlock(&c->rig->mu);
    free(c); /* the protocol's last call: it goes with it */
}

static const cio_protocol_ops_t conn_ops = {
    .connection_made = conn_made,
    .data_received = conn_data,
    .eof_received = conn_eof,
    .connection_lost = conn_lost,
};

static cio_protocol_t *rec_factory(void *arg)
{
    rig_t *rig = arg;
    pthread_mutex_lock(&rig->mu);
    int id = rig->n < MAX_RECS ? rig->n++ : -1;
    pthread_mutex_unlock(&rig->mu);
    conn_t *c = id >= 0 ? calloc(1, sizeof(*c)) : NULL;
    if (!c)
        return NULL; /* the server refuses it; the count check then fails */
    *c = (conn_t){.base = {&conn_ops}, .rig = rig, .rec = &rig->recs[id]};
    c->rec->worker = -1;
    for (size_t i = 0; rig->w && i < cio_workers_count(rig->w); i++)
        if (cio_workers_loop(rig->w, i) == cio_get_running_loop())
            c->rec->worker = (int)i;
    return &c->base;
}

/* ---- servers ------------------------------------------------------------------------ */

/* PROXY options trusting up to two ranges. */
typedef struct trust {
    cio_cidr_t ranges[2];
    cio_proxy_opts_t o;
} trust_t;

static void trust_init(trust_t *t, unsigned versions, double timeout, const char *a, const char *b)
{
    memset(t, 0, sizeof(*t));
    ck_assert_int_eq(cio_cidr_parse(a, &t->ranges[0]), 0);
    if (b)
        ck_assert_int_eq(cio_cidr_parse(b, &t->ranges[1]), 0);
    t->o = (cio_proxy_opts_t){
        .versions = versions, .trusted = t->ranges, .ntrusted = b ? 2 : 1, .timeout = timeout};
}

static int port_of(cio_server_t *s)
{
    int fd;
    ck_assert_uint_ge(cio_server_sockets(s, &fd, 1), 1);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

static cio_server_t *await_server(cio_future_t *f)
{
    ck_assert_ptr_nonnull(f);
    void *s = NULL;
    int rc = cio_await(f, &s);
    ck_assert_msg(rc == 0, "create_server: %s", cio_err_name(rc));
    cio_future_unref(f);
    return s;
}

/* Inside a task: a recording server on @p host, an ephemeral port. */
static cio_server_t *serve_on(rig_t *rig, const char *host, const trust_t *t, SSL_CTX *ssl)
{
    cio_server_opts_t so = {.proxy = &t->o, .ssl = ssl};
    return await_server(
        cio_loop_create_server(cio_get_running_loop(), rec_factory, rig, host, "0", &so));
}

/* Refusals are quiet: the exception handler hears none of them. */
typedef struct exc {
    int calls;
    char message[128];
} exc_t;

static int exc_handler(cio_loop_t *loop, const cio_exception_context_t *ctx, void *arg)
{
    exc_t *e = arg;
    if (e->calls++ == 0)
        snprintf(e->message, sizeof(e->message), "%s (%s)", ctx->message ? ctx->message : "",
                 cio_err_name(ctx->error));
    return 0;
}

/* ---- the log -------------------------------------------------------------------------- */

typedef struct logbuf {
    char text[16384];
    size_t len;
    int warnings; /* warning records about a connection */
} logbuf_t;

static void log_cb(cio_log_level_t level, const char *message, void *arg)
{
    logbuf_t *l = arg;
    size_t n = strlen(message);
    if (l->len + n + 2 < sizeof(l->text)) {
        memcpy(l->text + l->len, message, n);
        l->len += n;
        l->text[l->len++] = '\n';
        l->text[l->len] = '\0';
    }
    if (level == CIO_LOG_WARNING && strstr(message, "connection from "))
        l->warnings++;
}

/* The log, captured from now on until log_release(). */
static logbuf_t *log_capture(void)
{
    logbuf_t *log = calloc(1, sizeof(*log));
    ck_assert_ptr_nonnull(log);
    cio_log_set_handler(log_cb, log, CIO_LOG_DEBUG);
    return log;
}

static void log_release(logbuf_t *log)
{
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);
    free(log);
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* How many log lines say the connection was closed for @p err. */
static int refusals_logged(const logbuf_t *l, int err)
{
    char needle[160];
    snprintf(needle, sizeof(needle), "closed: %s", cio_strerror(err));
    return count_of(l->text, needle);
}

/* ---- python -------------------------------------------------------------------------- */

static const char *peer_script(void)
{
    static char path[PATH_MAX];
    const char *src = getenv("top_srcdir");
    if (!src)
        src = access("tests/proxy_peer.py", R_OK) == 0 ? "." : "..";
    int n = snprintf(path, sizeof(path), "%s/tests/proxy_peer.py", src);
    ck_assert_int_lt(n, (int)sizeof(path));
    return path;
}

/*
 * Inside a task: run tests/proxy_peer.py with the arguments (NULL-ended)
 * while the loop goes on serving; its output goes into @p out. Fails the test
 * unless it ends within 60 s, with status 0, printing "OK".
 */
static void run_peer(char *out, size_t outlen, const char *scenario, ...)
{
    char *argv[12] = {(char *)PYTHON, (char *)peer_script(), (char *)scenario};
    va_list ap;
    va_start(ap, scenario);
    for (int i = 3; i < 11 && (argv[i] = va_arg(ap, char *)); i++)
        ;
    va_end(ap);
    int status = run_captured(argv, out, outlen, 60.0);
    ck_assert_msg(status == 0 && strncmp(out, "OK", 2) == 0, "proxy_peer.py %s: status %d: %s",
                  scenario, status, out);
}

/* ---- expectations ---------------------------------------------------------------------- */

enum { TLV_NONE, TLV_FULL, TLV_CRC, TLV_BIG };

/* What a connection must have seen; NULL addresses: the socket's own. */
typedef struct expect {
    const char *what;
    const char *peer, *sock;
    uint8_t version;
    bool local;
    int socktype;
    int tlvs;
    const char *data; /* what the peer sent after the header; NULL: REQ */
} expect_t;

static void expect_tlv(const rec_t *r, uint8_t type, const void *want, size_t want_len)
{
    cio_proxy_header_t h = {.version = 2, .tlvs = r->tlvs, .tlvs_len = r->tlvs_len};
    const void *v = NULL;
    size_t len = 0;
    int rc = cio_proxy_tlv(&h, type, &v, &len);
    ck_assert_msg(rc == 0, "TLV 0x%02x: %s", type, cio_err_name(rc));
    ck_assert_msg(len == want_len && memcmp(v, want, len) == 0,
                  "TLV 0x%02x: %zu bytes, want %zu (\"%.*s\")", type, len, want_len, (int)len,
                  (const char *)v);
}

static void expect_no_tlv(const rec_t *r, uint8_t type)
{
    cio_proxy_header_t h = {.version = 2, .tlvs = r->tlvs, .tlvs_len = r->tlvs_len};
    const void *v;
    size_t len;
    int rc = cio_proxy_tlv(&h, type, &v, &len);
    ck_assert_msg(rc == -ENOENT, "TLV 0x%02x: %s, want ENOENT", type, cio_err_name(rc));
}

/* proxy_peer.py's TLVS: ALPN, AUTHORITY, UNIQUE_ID, SSL (VERSION, CN), NOOP, byte for byte. */
static void check_full_tlvs(const rec_t *r)
{
    ck_assert_uint_eq(r->tlvs_len, 97);
    expect_tlv(r, CIO_PP2_TYPE_ALPN, "h2", 2);
    expect_tlv(r, CIO_PP2_TYPE_AUTHORITY, "example.com", 11);
    uint8_t uid[32];
    for (int i = 0; i < 32; i++)
        uid[i] = (uint8_t)(i * 8);
    expect_tlv(r, CIO_PP2_TYPE_UNIQUE_ID, uid, sizeof(uid));
    static const uint8_t ssl_value[] = "\x07\x00\x00\x00\x00"
                                       "\x21\x00\x07TLSv1.3"
                                       "\x22\x00\x0e"
                                       "client.example";
    expect_tlv(r, CIO_PP2_TYPE_SSL, ssl_value, sizeof(ssl_value) - 1);
    expect_tlv(r, CIO_PP2_SUBTYPE_SSL_VERSION, "TLSv1.3", 7);
    expect_tlv(r, CIO_PP2_SUBTYPE_SSL_CN, "client.example", 14);
    expect_tlv(r, CIO_PP2_TYPE_NOOP, "\0\0\0\0\0", 5);
    expect_no_tlv(r, CIO_PP2_TYPE_CRC32C);
    expect_no_tlv(r, CIO_PP2_SUBTYPE_SSL_CIPHER);
    expect_no_tlv(r, CIO_PP2_TYPE_NETNS);
}

static void check_tlvs(const rec_t *r, const expect_t *e)
{
    if (e->tlvs == TLV_NONE) {
        ck_assert_msg(!r->has_tlvs && r->tlvs_len == 0, "%s: %zu bytes of TLVs", e->what,
                      r->tlvs_len);
        return;
    }
    ck_assert_msg(r->has_tlvs, "%s: no TLVs", e->what);
    if (e->tlvs == TLV_BIG) { /* one NOOP filling the largest header */
        ck_assert_msg(r->tlvs_len == 65535 - 12 && r->noop_rc == 0 && r->noop_len == 65520,
                      "%s: %zu bytes of TLVs, NOOP %s of %zu bytes", e->what, r->tlvs_len,
                      cio_err_name(r->noop_rc), r->noop_len);
        return;
    }
    if (e->tlvs == TLV_FULL) {
        check_full_tlvs(r);
        return;
    }
    ck_assert_uint_eq(r->tlvs_len, 3 + 11 + 3 + 4); /* AUTHORITY, CRC32C */
    expect_tlv(r, CIO_PP2_TYPE_AUTHORITY, "crc.example", 11);
    cio_proxy_header_t h = {.version = 2, .tlvs = r->tlvs, .tlvs_len = r->tlvs_len};
    size_t len = 0;
    ck_assert_int_eq(cio_proxy_tlv(&h, CIO_PP2_TYPE_CRC32C, NULL, &len), 0);
    ck_assert_uint_eq(len, 4);
}

/*
 * A connection that went well: made once with @p e's addresses (the
 * socket's own: accepted on @p listener from a peer whose address starts
 * with @p peer_prefix), got @p data and nothing else, and ended cleanly.
 */
static void check_served(const rec_t *r, const expect_t *e, const char *listener,
                         const char *peer_prefix, const char *data)
{
    ck_assert_msg(r->made == 1, "%s: connection_made %d times", e->what, r->made);
    ck_assert_msg(r->lost == 1 && r->lost_err == 0, "%s: connection_lost %d times, last %s",
                  e->what, r->lost, cio_err_name(r->lost_err));
    ck_assert_msg(!r->overflow && r->len == strlen(data) && memcmp(r->data, data, r->len) == 0,
                  "%s: received %zu bytes \"%.*s\", want \"%s\"", e->what, r->len,
                  (int)(r->len < sizeof(r->data) ? r->len : sizeof(r->data)), r->data, data);
    ck_assert_msg(r->proxy_rc == 0, "%s: \"proxy\": %s", e->what, cio_err_name(r->proxy_rc));
    ck_assert_msg(r->version == e->version && r->local == e->local && r->socktype == e->socktype,
                  "%s: version %u local %d socktype %d", e->what, r->version, r->local,
                  r->socktype);
    ck_assert_msg(strcmp(r->ssock, listener) == 0, "%s: socket_sockname %s, want %s", e->what,
                  r->ssock, listener);
    ck_assert_msg(strncmp(r->speer, peer_prefix, strlen(peer_prefix)) == 0,
                  "%s: socket_peername %s", e->what, r->speer);
    const char *peer = e->peer ? e->peer : r->speer, *sock = e->sock ? e->sock : r->ssock;
    ck_assert_msg(strcmp(r->peer, peer) == 0 && strcmp(r->sock, sock) == 0,
                  "%s: peername %s sockname %s, want %s and %s", e->what, r->peer, r->sock, peer,
                  sock);
    check_tlvs(r, e);
}

/* A refused connection: a protocol was made, never told connection_made, and freed. */
static void check_refused(const rec_t *r, const char *what, int err)
{
    ck_assert_msg(r->made == 0 && r->len == 0, "%s: connection_made %d times, %zu bytes", what,
                  r->made, r->len);
    ck_assert_msg(r->lost == 1 && r->lost_err == err, "%s: connection_lost %d times, %s, want %s",
                  what, r->lost, cio_err_name(r->lost_err), cio_err_name(err));
}

static const expect_t v1_tcp4 = {.what = "v1 TCP4",
                                 .peer = "192.0.2.1:56324",
                                 .sock = "198.51.100.2:443",
                                 .version = 1,
                                 .socktype = SOCK_STREAM};
static const expect_t v2_tlvs = {.what = "v2 TCP4 with TLVs",
                                 .peer = "192.0.2.10:1234",
                                 .sock = "203.0.113.5:8443",
                                 .version = 2,
                                 .socktype = SOCK_STREAM,
                                 .tlvs = TLV_FULL};
static const expect_t v2_tlvs6 = {.what = "v2 TCP6 with TLVs",
                                  .peer = "[2001:db8::10]:1234",
                                  .sock = "[2001:db8::20]:8443",
                                  .version = 2,
                                  .socktype = SOCK_STREAM,
                                  .tlvs = TLV_FULL};

/* ---- every kind of header -------------------------------------------------------------- */

/* proxy_peer.py headers: the same cases, in the same order. */
static const expect_t header_cases[] = {
    {"v1 TCP4", "192.0.2.1:56324", "198.51.100.2:443", 1, false, SOCK_STREAM, TLV_NONE, NULL},
    {"v1 TCP6", "[2001:db8::1]:56324", "[2001:db8::2]:443", 1, false, SOCK_STREAM, TLV_NONE, NULL},
    {"v1 UNKNOWN", NULL, NULL, 1, true, SOCK_STREAM, TLV_NONE, NULL},
    {"v1 UNKNOWN with addresses", NULL, NULL, 1, true, SOCK_STREAM, TLV_NONE, NULL},
    {"v2 TCP4", "192.0.2.10:1234", "203.0.113.5:8443", 2, false, SOCK_STREAM, TLV_NONE, NULL},
    {"v2 TCP6", "[2001:db8::10]:1234", "[2001:db8::20]:8443", 2, false, SOCK_STREAM, TLV_NONE,
     NULL},
    {"v2 UNIX stream", "unix:/run/client.sock", "unix:/run/haproxy.sock", 2, false, SOCK_STREAM,
     TLV_NONE, NULL},
    {"v2 LOCAL", NULL, NULL, 2, true, 0, TLV_NONE, NULL},
    {"v2 LOCAL with an address block", NULL, NULL, 2, true, 0, TLV_NONE, NULL},
    {"v2 PROXY UNSPEC", NULL, NULL, 2, true, 0, TLV_NONE, NULL},
    {"v2 TCP4 with TLVs", "192.0.2.10:1234", "203.0.113.5:8443", 2, false, SOCK_STREAM, TLV_FULL,
     NULL},
    {"v2 TCP6 with a CRC32C", "[2001:db8::10]:1234", "[2001:db8::20]:8443", 2, false, SOCK_STREAM,
     TLV_CRC, NULL},
    {"v2 TCP4 of the largest size", "192.0.2.10:1234", "203.0.113.5:8443", 2, false, SOCK_STREAM,
     TLV_BIG, NULL},
    {"a health check (v2 LOCAL, then EOF)", NULL, NULL, 2, true, 0, TLV_NONE, ""},
};
#define NHEADER_CASES ((int)(sizeof(header_cases) / sizeof(header_cases[0])))

typedef struct unix_dir {
    char dir[64], path[96];
} unix_dir_t;

static void unix_dir_make(unix_dir_t *u)
{
    snprintf(u->dir, sizeof(u->dir), "/tmp/cio-proxy-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(u->dir));
    snprintf(u->path, sizeof(u->path), "%s/s", u->dir);
}

static void unix_dir_remove(unix_dir_t *u)
{
    unlink(u->path);
    rmdir(u->dir);
}

/* A server without .proxy: no "proxy", and the socket's addresses under both names. */
static void check_without_proxy(const rec_t *r)
{
    ck_assert_msg(r->made == 1 && r->lost == 1 && r->lost_err == 0, "made %d lost %d (%s)", r->made,
                  r->lost, cio_err_name(r->lost_err));
    ck_assert_msg(r->len == strlen(REQ) && memcmp(r->data, REQ, r->len) == 0, "received %zu bytes",
                  r->len);
    ck_assert_msg(r->proxy_rc == -ENOENT, "\"proxy\": %s", cio_err_name(r->proxy_rc));
    ck_assert_msg(strncmp(r->peer, "127.0.0.1:", 10) == 0 && strcmp(r->peer, r->speer) == 0 &&
                      strcmp(r->sock, r->ssock) == 0,
                  "peername %s sockname %s, socket_peername %s socket_sockname %s", r->peer,
                  r->sock, r->speer, r->ssock);
}

static int headers_fn(void *arg, void **result)
{
    rig_t rig;
    rig_init(&rig);
    exc_t e = {0};
    cio_loop_set_exception_handler(cio_get_running_loop(), exc_handler, &e);
    trust_t t;
    trust_init(&t, CIO_PROXY_ANY, 0, "127.0.0.1/32", "::1/128");
    cio_server_t *s4 = serve_on(&rig, "127.0.0.1", &t, NULL), *s6 = serve_on(&rig, "::1", &t, NULL);
    unix_dir_t u;
    unix_dir_make(&u);
    cio_server_opts_t so = {.proxy = &t.o};
    cio_server_t *su = await_server(
        cio_loop_create_unix_server(cio_get_running_loop(), rec_factory, &rig, u.path, &so));
    cio_server_t *plain = await_server(
        cio_loop_create_server(cio_get_running_loop(), rec_factory, &rig, "127.0.0.1", "0", NULL));
    char port4[16], port6[16], portp[16], out[4096], ls4[64], ls6[64], lsu[128];
    snprintf(port4, sizeof(port4), "%d", port_of(s4));
    snprintf(port6, sizeof(port6), "%d", port_of(s6));
    snprintf(portp, sizeof(portp), "%d", port_of(plain));
    run_peer(out, sizeof(out), "headers", port4, port6, u.path, portp, NULL);
    int n = 0;
    ck_assert_int_eq(sscanf(out, "OK %d", &n), 1);
    ck_assert_int_eq(n, NHEADER_CASES + 3);
    WAIT_UNTIL(rig_lost(&rig) == n);
    ck_assert_int_eq(rig.n, n);
    snprintf(ls4, sizeof(ls4), "127.0.0.1:%s", port4);
    snprintf(ls6, sizeof(ls6), "[::1]:%s", port6);
    snprintf(lsu, sizeof(lsu), "unix:%s", u.path);
    for (int i = 0; i < NHEADER_CASES; i++) {
        const expect_t *c = &header_cases[i];
        check_served(&rig.recs[i], c, ls4, "127.0.0.1:", c->data ? c->data : REQ);
        ck_assert_msg(rig.recs[i].eof == 1, "%s: eof_received %d times", c->what, rig.recs[i].eof);
    }
    expect_t over = v1_tcp4;
    over.what = "v1 TCP4 over ::1";
    check_served(&rig.recs[NHEADER_CASES], &over, ls6, "[::1]:", REQ);
    over.what = "v1 TCP4 over a Unix socket";
    check_served(&rig.recs[NHEADER_CASES + 1], &over, lsu, "unix:", REQ);
    check_without_proxy(&rig.recs[NHEADER_CASES + 2]);
    ck_assert_msg(e.calls == 0, "exception handler: %s", e.message);
    cio_server_free(plain);
    cio_server_free(s4);
    cio_server_free(s6);
    cio_server_free(su);
    unix_dir_remove(&u);
    rig_free(&rig);
    return 0;
}

/* Each header's addresses replace the socket's as peername and sockname; TLVs read back. */
START_TEST(test_every_header_kind_gives_its_addresses_and_tlvs)
{
    if (!have_python())
        return;
    ck_assert_int_eq(cio_run(headers_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- however the header and the request are cut ------------------------------------------ */

static int segments_fn(void *arg, void **result)
{
    rig_t rig;
    rig_init(&rig);
    trust_t t;
    trust_init(&t, CIO_PROXY_ANY, 0, "127.0.0.1/32", "::1/128");
    cio_server_t *s = serve_on(&rig, "127.0.0.1", &t, NULL);
    char port[16], out[4096], ls[64];
    snprintf(port, sizeof(port), "%d", port_of(s));
    snprintf(ls, sizeof(ls), "127.0.0.1:%s", port);
    run_peer(out, sizeof(out), "segments", port, NULL);
    int n[4];
    ck_assert_int_eq(sscanf(out, "OK %d %d %d %d", &n[0], &n[1], &n[2], &n[3]), 4);
    /* Every cut of header + request, and the whole: as many connections as bytes. */
    ck_assert_int_eq(n[0], (int)strlen(V1_TCP4 REQ));
    ck_assert_int_eq(n[1], V2_TLVS6_LEN + (int)strlen(REQ));
    ck_assert_int_eq(n[2] + n[3], 2);
    int total = n[0] + n[1] + n[2] + n[3];
    WAIT_UNTIL(rig_lost(&rig) == total);
    ck_assert_int_eq(rig.n, total);
    const expect_t *groups[4] = {&v1_tcp4, &v2_tlvs6, &v2_tlvs, &v1_tcp4};
    for (int g = 0, i = 0; g < 4; g++) {
        for (int k = 0; k < n[g]; k++, i++) {
            expect_t e = *groups[g];
            char what[96];
            if (g >= 2)
                snprintf(what, sizeof(what), "%s, a byte at a time", e.what);
            else if (k + 1 < n[g])
                snprintf(what, sizeof(what), "%s, cut at byte %d", e.what, k + 1);
            else
                snprintf(what, sizeof(what), "%s, in one send", e.what);
            e.what = what;
            check_served(&rig.recs[i], &e, ls, "127.0.0.1:", REQ);
        }
    }
    cio_server_free(s);
    rig_free(&rig);
    return 0;
}

/*
 * Header + "hello world\n" in two sends cut at every byte boundary, in one
 * send, and a byte per send: connection_made once, the header's addresses,
 * the request whole and nothing of the header.
 */
START_TEST(test_header_and_request_arrive_intact_however_cut)
{
    if (!have_python())
        return;
    ck_assert_int_eq(cio_run(segments_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- TLS after the header ----------------------------------------------------------------- */

static char pki_dir[PATH_MAX];

/*
 * Unchecked fixture (once, before the tests fork): the PKI of tests/tls_pki.sh,
 * in a directory of our own under test_tls's (which clean-local removes), so
 * the two suites never make one at the same time.
 */
static void pki_setup(void)
{
    const char *src = getenv("top_srcdir"), *build = getenv("top_builddir");
    if (!src)
        src = access("tests/tls_pki.sh", R_OK) == 0 ? "." : "..";
    if (!build)
        build = ".";
    int n = snprintf(pki_dir, sizeof(pki_dir), "%s/tests/tls-pki/proxy", build);
    ck_assert_int_lt(n, (int)sizeof(pki_dir));
    char cmd[2 * PATH_MAX + 64];
    n = snprintf(cmd, sizeof(cmd), "sh '%s/tests/tls_pki.sh' '%s'", src, pki_dir);
    ck_assert_int_lt(n, (int)sizeof(cmd));
    int rc = system(cmd);
    ck_assert_msg(rc == 0, "%s: exit status %d", cmd, rc);
}

static const char *pki(const char *name, char *buf, size_t n)
{
    ck_assert_int_lt(snprintf(buf, n, "%s/%s", pki_dir, name), (int)n);
    return buf;
}

static int tls_fn(void *arg, void **result)
{
    rig_t rig;
    rig_init(&rig);
    exc_t e = {0};
    cio_loop_set_exception_handler(cio_get_running_loop(), exc_handler, &e);
    char cert[PATH_MAX + 32], key[PATH_MAX + 32], ca[PATH_MAX + 32];
    SSL_CTX *ctx = NULL;
    int rc = cio_tls_server_context(&ctx, pki("server.pem", cert, sizeof(cert)),
                                    pki("server.key", key, sizeof(key)));
    ck_assert_msg(rc == 0, "server context: %s", cio_err_name(rc));
    trust_t t;
    trust_init(&t, CIO_PROXY_ANY, 0, "127.0.0.1/32", "::1/128");
    cio_server_t *s = serve_on(&rig, "127.0.0.1", &t, ctx);
    SSL_CTX_free(ctx); /* the server keeps its own reference */
    char port[16], out[4096], ls[64];
    snprintf(port, sizeof(port), "%d", port_of(s));
    snprintf(ls, sizeof(ls), "127.0.0.1:%s", port);
    run_peer(out, sizeof(out), "tls", port, pki("ca.pem", ca, sizeof(ca)), NULL);
    WAIT_UNTIL(rig_lost(&rig) == 4);
    ck_assert_int_eq(rig.n, 4);
    const expect_t *cases[4] = {&v1_tcp4, &v2_tlvs, &v1_tcp4, &v2_tlvs};
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(rig.recs[i].tls, "connection %d: no TLS", i);
        check_served(&rig.recs[i], cases[i], ls, "127.0.0.1:", REQ);
    }
    ck_assert_msg(e.calls == 0, "exception handler: %s", e.message);
    cio_server_free(s);
    rig_free(&rig);
    return 0;
}

/*
 * The header in clear, then TLS on the same socket: split from the handshake,
 * or in one send with the ClientHello; the protocol gets the header's
 * addresses and the plaintext.
 */
START_TEST(test_tls_handshake_follows_the_header_split_or_coalesced)
{
    if (!have_python())
        return;
    ck_assert_int_eq(cio_run(tls_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- refusals -------------------------------------------------------------------------------- */

/* proxy_peer.py refusals, in order, after the good connection (the untrusted peer has none). */
static const struct {
    const char *what;
    int err;
} refused[] = {
    {"malformed v1", CIO_EPROXY},
    {"a bad v2 signature", CIO_EPROXYMISSING},
    {"v2 of version 3", CIO_EPROXY},
    {"v2 to a v1-only server", CIO_EPROXYVERSION},
    {"no header", CIO_EPROXYMISSING},
    {"EOF before a byte", CIO_EPROXYMISSING},
    {"EOF inside a v1 header", CIO_EPROXY},
    {"EOF inside a v2 header", CIO_EPROXY},
    {"a v1 line past 107 bytes", CIO_EPROXY},
    {"a v2 header with a wrong CRC32C", CIO_EPROXY},
    {"half a header, then nothing (the timeout)", CIO_EPROXYTIMEOUT},
};
#define NREFUSED ((int)(sizeof(refused) / sizeof(refused[0])))

static void check_refusal_log(const logbuf_t *log)
{
    ck_assert_msg(log->warnings == NREFUSED + 1, "%d warnings:\n%s", log->warnings, log->text);
    ck_assert_int_eq(refusals_logged(log, CIO_EPROXYUNTRUSTED), 1);
    ck_assert_int_eq(refusals_logged(log, CIO_EPROXY), 6);
    ck_assert_int_eq(refusals_logged(log, CIO_EPROXYMISSING), 3);
    ck_assert_int_eq(refusals_logged(log, CIO_EPROXYVERSION), 1);
    ck_assert_int_eq(refusals_logged(log, CIO_EPROXYTIMEOUT), 1);
    ck_assert_int_eq(count_of(log->text, "connection from 127.0.0.1:"), NREFUSED + 1);
    ck_assert_msg(!strstr(log->text, "not logged"), "%s", log->text);
}

static int refusals_fn(void *arg, void **result)
{
    rig_t rig, nobody;
    rig_init(&rig);
    rig_init(&nobody);
    exc_t e = {0};
    cio_loop_set_exception_handler(cio_get_running_loop(), exc_handler, &e);
    logbuf_t *log = log_capture();
    trust_t t, t10, tv1;
    trust_init(&t, CIO_PROXY_ANY, 0.2, "127.0.0.1/32", "::1/128");
    trust_init(&t10, CIO_PROXY_ANY, 0, "10.0.0.0/8", NULL);
    trust_init(&tv1, CIO_PROXY_V1, 0, "127.0.0.1/32", NULL);
    cio_server_t *s = serve_on(&rig, "127.0.0.1", &t, NULL);
    cio_server_t *su = serve_on(&nobody, "127.0.0.1", &t10, NULL);
    cio_server_t *sv1 = serve_on(&rig, "127.0.0.1", &tv1, NULL);
    char port[16], uport[16], v1port[16], out[4096], ls[64];
    snprintf(port, sizeof(port), "%d", port_of(s));
    snprintf(uport, sizeof(uport), "%d", port_of(su));
    snprintf(v1port, sizeof(v1port), "%d", port_of(sv1));
    run_peer(out, sizeof(out), "refusals", port, uport, v1port, NULL);
    WAIT_UNTIL(rig_lost(&rig) == NREFUSED + 1);
    ck_assert_int_eq(rig.n, NREFUSED + 1);
    ck_assert_msg(nobody.n == 0, "the untrusted peer's server made %d protocols", nobody.n);
    /* The good connection echoed after each bad one, and ended when python closed it. */
    char want[512] = REQ;
    for (int k = 1; k <= NREFUSED + 1; k++)
        snprintf(want + strlen(want), sizeof(want) - strlen(want), "still here %d\n", k);
    snprintf(ls, sizeof(ls), "127.0.0.1:%s", port);
    expect_t good = {.what = "the good connection",
                     .peer = "192.0.2.7:5555",
                     .sock = "198.51.100.7:80",
                     .version = 1,
                     .socktype = SOCK_STREAM};
    check_served(&rig.recs[0], &good, ls, "127.0.0.1:", want);
    for (int i = 0; i < NREFUSED; i++)
        check_refused(&rig.recs[i + 1], refused[i].what, refused[i].err);
    check_refusal_log(log);
    ck_assert_msg(e.calls == 0, "exception handler: %s", e.message);
    log_release(log);
    cio_server_free(s);
    cio_server_free(su);
    cio_server_free(sv1);
    rig_free(&rig);
    rig_free(&nobody);
    return 0;
}

/*
 * Untrusted, malformed, missing, of a version not accepted, cut by EOF, too
 * slow: each closed without connection_made, its protocol (if made) told
 * connection_lost with the reason, one log line each, and a good connection
 * open all along goes on echoing.
 */
START_TEST(test_bad_peers_are_refused_logged_and_disturb_no_one)
{
    if (!have_python())
        return;
    ck_assert_int_eq(cio_run(refusals_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- the log's rate limit ----------------------------------------------------------------- */

static int burst_fn(void *arg, void **result)
{
    rig_t rig;
    rig_init(&rig);
    logbuf_t *log = log_capture();
    trust_t t;
    trust_init(&t, CIO_PROXY_ANY, 0, "127.0.0.1/32", NULL);
    cio_server_t *s = serve_on(&rig, "127.0.0.1", &t, NULL);
    char port[16], out[4096];
    snprintf(port, sizeof(port), "%d", port_of(s));
    run_peer(out, sizeof(out), "burst", port, NULL);
    WAIT_UNTIL(rig_lost(&rig) == 31);
    ck_assert_int_eq(rig.n, 31);
    double first = rig.recs[0].lost_at, last = first;
    for (int i = 0; i < 31; i++) {
        check_refused(&rig.recs[i], "a connection without a header", CIO_EPROXYMISSING);
        if (i < 30 && rig.recs[i].lost_at < first)
            first = rig.recs[i].lost_at;
        if (i < 30 && rig.recs[i].lost_at > last)
            last = rig.recs[i].lost_at;
    }
    /* Ten lines a second: the burst spans this many one-second windows at most. */
    int windows = (int)(last - first + 0.1) + 1;
    printf("burst: 31 refusals (30 over %.3f s, then one), %d log lines\n", last - first,
           log->warnings);
    ck_assert_msg(log->warnings >= 11 && log->warnings <= 10 * windows + 1,
                  "%d lines for 30 refusals over %.3f s, then one:\n%s", log->warnings,
                  last - first, log->text);
    if (log->warnings < 31) /* some were left out, and a later line says so */
        ck_assert_msg(strstr(log->text, "(and earlier refusals not logged)"), "%s", log->text);
    log_release(log);
    cio_server_free(s);
    rig_free(&rig);
    return 0;
}

/* 30 headerless peers at once: about ten lines, and the next line says some were left out. */
START_TEST(test_a_burst_of_bad_peers_logs_ten_lines_a_second)
{
    if (!have_python())
        return;
    ck_assert_int_eq(cio_run(burst_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- the caller's options ---------------------------------------------------------------- */

static int copied_fn(void *arg, void **result)
{
    rig_t rig;
    rig_init(&rig);
    trust_t t;
    trust_init(&t, CIO_PROXY_V1, 0, "127.0.0.1/32", NULL);
    cio_server_opts_t so = {.proxy = &t.o};
    cio_future_t *f =
        cio_loop_create_server(cio_get_running_loop(), rec_factory, &rig, "127.0.0.1", "0", &so);
    /* The options are the caller's again once the call returns (server.h: "Copied"). */
    ck_assert_int_eq(cio_cidr_parse("10.0.0.0/8", &t.ranges[0]), 0);
    t.o.versions = CIO_PROXY_V2;
    cio_server_t *s = await_server(f);
    char port[16], out[4096], ls[64];
    snprintf(port, sizeof(port), "%d", port_of(s));
    snprintf(ls, sizeof(ls), "127.0.0.1:%s", port);
    run_peer(out, sizeof(out), "one", port, NULL);
    WAIT_UNTIL(rig_lost(&rig) == 1);
    check_served(&rig.recs[0], &v1_tcp4, ls, "127.0.0.1:", REQ);
    cio_server_free(s);
    rig_free(&rig);
    return 0;
}

/* The server takes the PROXY options as they are at the call, not when it binds. */
START_TEST(test_server_copies_the_proxy_options_at_the_call)
{
    if (!have_python())
        return;
    ck_assert_int_eq(cio_run(copied_fn, NULL, false, NULL), 0);
}
END_TEST

/* ---- sharded servers ----------------------------------------------------------------------- */

static int await_ok(cio_future_t *f)
{
    ck_assert_ptr_nonnull(f);
    int rc = cio_await(f, NULL);
    cio_future_unref(f);
    return rc;
}

/*
 * A peer that connected and reset before the server got to it: gone, not
 * untrusted, and no refusal logged; the service never hears connection_made
 * (a protocol made for it hears connection_lost only).
 */
static int reset_fn(void *arg, void **result)
{
    rig_t rig;
    rig_init(&rig);
    logbuf_t *log = log_capture();
    trust_t t;
    trust_init(&t, CIO_PROXY_ANY, 0, "127.0.0.1/32", NULL);
    cio_server_opts_t so = {.proxy = &t.o};
    cio_server_t *s = await_server(
        cio_loop_create_server(cio_get_running_loop(), rec_factory, &rig, "127.0.0.1", "0", &so));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_of(s)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* The task does not yield until the reset: the loop accepts a connection already gone. */
    ck_assert_int_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    struct linger reset = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    close(c);
    cio_sleep(0.2);
    ck_assert_int_le(rig.n, 1);
    ck_assert_int_eq(rig.lost, rig.n);
    ck_assert_int_eq(rig.n ? rig.recs[0].made : 0, 0);
    ck_assert_msg(log->warnings == 0, "logged: %s", log->text);
    log_release(log);
    cio_server_free(s);
    rig_free(&rig);
    return 0;
}

START_TEST(test_a_peer_gone_before_accept_is_not_called_untrusted)
{
    ck_assert_int_eq(cio_run(reset_fn, NULL, false, NULL), 0);
}
END_TEST

typedef struct sharded_args {
    rig_t rig;
    cio_balance_t balance;
    char port[16]; /* the service's */
} sharded_args_t;

static int sharded_fn(void *arg, void **result)
{
    sharded_args_t *a = arg;
    trust_t t;
    trust_init(&t, CIO_PROXY_ANY, 0, "127.0.0.1/32", "::1/128");
    cio_sharded_opts_t o = {.balance = a->balance, .proxy = &t.o};
    cio_future_t *f = cio_workers_serve(a->rig.w, rec_factory, &a->rig, "127.0.0.1", "0", &o);
    ck_assert_ptr_nonnull(f);
    void *s = NULL;
    int rc = cio_await(f, &s);
    ck_assert_msg(rc == 0, "cio_workers_serve: %s", cio_err_name(rc));
    cio_future_unref(f);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    ck_assert_int_eq(cio_sharded_sockname(s, &ss, &len), 0);
    char out[4096];
    snprintf(a->port, sizeof(a->port), "%d", ntohs(((struct sockaddr_in *)&ss)->sin_port));
    run_peer(out, sizeof(out), "sharded", a->port, NULL);
    WAIT_UNTIL(rig_lost(&a->rig) == 4);
    ck_assert_int_eq(await_ok(cio_sharded_close(s)), 0);
    ck_assert_int_eq(await_ok(cio_sharded_wait_closed(s)), 0);
    cio_sharded_free(s);
    return 0;
}

/* What connection @p i of proxy_peer.py sharded said it came from. */
static void check_sharded_conn(const rec_t *r, const char *port)
{
    int i = -1;
    ck_assert_msg(sscanf(r->data, "conn %d\n", &i) == 1 && i >= 0 && i < 4, "received %.*s",
                  (int)r->len, r->data);
    char peer[64], data[16], ls[64];
    snprintf(peer, sizeof(peer), "192.0.2.%d:%d", i + 1, 40000 + i);
    snprintf(data, sizeof(data), "conn %d\n", i);
    snprintf(ls, sizeof(ls), "127.0.0.1:%s", port);
    expect_t e = {.what = "a sharded connection",
                  .peer = peer,
                  .sock = "198.51.100.1:443",
                  .version = i % 2 ? 2 : 1,
                  .socktype = SOCK_STREAM,
                  .tlvs = i % 2 ? TLV_FULL : TLV_NONE};
    check_served(r, &e, ls, "127.0.0.1:", data);
}

static void check_sharded(cio_balance_t balance)
{
    cio_workers_opts_t wo = {.count = 2};
    sharded_args_t a = {.balance = balance};
    rig_init(&a.rig);
    a.rig.w = cio_workers_new(&wo);
    ck_assert_ptr_nonnull(a.rig.w);
    ck_assert_int_eq(cio_run(sharded_fn, &a, false, NULL), 0);
    ck_assert_int_eq(a.rig.n, 4);
    int per_worker[2] = {0, 0};
    for (int i = 0; i < 4; i++) {
        const rec_t *r = &a.rig.recs[i];
        ck_assert_msg(r->worker == 0 || r->worker == 1, "connection %d on worker %d", i, r->worker);
        per_worker[r->worker]++;
        check_sharded_conn(r, a.port);
    }
    printf("%s: connections per worker: %d + %d\n",
           balance == CIO_BALANCE_HANDOFF ? "handoff" : "reuseport", per_worker[0], per_worker[1]);
    /* HANDOFF gives each new connection to the least loaded worker; they stay open. */
    if (balance == CIO_BALANCE_HANDOFF)
        ck_assert_msg(per_worker[0] == 2 && per_worker[1] == 2, "handoff: %d + %d", per_worker[0],
                      per_worker[1]);
    cio_workers_free(a.rig.w);
    rig_free(&a.rig);
}

/* Every worker reads the header: the right peername on whichever serves it. */
START_TEST(test_sharded_reuseport_workers_read_the_header)
{
    if (!have_python())
        return;
    check_sharded(CIO_BALANCE_REUSEPORT);
}
END_TEST

START_TEST(test_sharded_handoff_workers_read_the_header)
{
    if (!have_python())
        return;
    check_sharded(CIO_BALANCE_HANDOFF);
}
END_TEST

/* ---- datagrams ------------------------------------------------------------------------ */

/* A datagram endpoint's protocol: each datagram is answered, to its sender, with what
 * the header said ("src=... dst=... auth=...", or "local") and the payload. */
typedef struct dgram_rec {
    cio_protocol_t base;
    cio_transport_t *t;
    int received;
    int outside_rc; /* get_extra_info("proxy") outside datagram_received */
} dgram_rec_t;

static int dgram_made(cio_protocol_t *p, cio_transport_t *t)
{
    ((dgram_rec_t *)p)->t = t;
    return 0;
}

/* What the header of the datagram being delivered says, into @p out. */
static void header_text(cio_transport_t *t, char *out, size_t n)
{
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(t, "proxy", &info), 0);
    const cio_proxy_header_t *h = info.object;
    ck_assert_int_eq(h->version, 2);
    if (h->local) {
        snprintf(out, n, "local");
        return;
    }
    ck_assert_int_eq(h->socktype, SOCK_DGRAM);
    char src[160], dst[160];
    addr_text(&h->src, h->src_len, src, sizeof(src));
    addr_text(&h->dst, h->dst_len, dst, sizeof(dst));
    int k = snprintf(out, n, "src=%s dst=%s", src, dst);
    const void *v;
    size_t vlen;
    if (cio_proxy_tlv(h, CIO_PP2_TYPE_AUTHORITY, &v, &vlen) == 0)
        snprintf(out + k, n - (size_t)k, " auth=%.*s", (int)vlen, (const char *)v);
}

static int dgram_received(cio_protocol_t *p, const void *data, size_t len,
                          const struct sockaddr *addr, socklen_t addrlen)
{
    dgram_rec_t *r = (dgram_rec_t *)p;
    char reply[1024];
    header_text(r->t, reply, sizeof(reply));
    size_t k = strlen(reply);
    ck_assert_uint_lt(k + 1 + len, sizeof(reply));
    reply[k++] = '|';
    memcpy(reply + k, data, len);
    r->received++;
    return cio_transport_sendto(r->t, reply, k + len, addr, addrlen);
}

static void dgram_lost(cio_protocol_t *p, int err)
{
    (void)p;
    (void)err;
}

static const cio_protocol_ops_t dgram_ops = {
    .connection_made = dgram_made,
    .datagram_received = dgram_received,
    .connection_lost = dgram_lost,
};

static cio_protocol_t *dgram_factory(void *arg)
{
    return arg;
}

static int udp_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    logbuf_t *log = log_capture();
    trust_t t, bad;
    trust_init(&t, CIO_PROXY_V2, 0, "127.0.0.1/32", NULL);
    trust_init(&bad, CIO_PROXY_ANY, 0, "127.0.0.1/32", NULL);
    cio_datagram_opts_t o = {.local_host = "127.0.0.1", .local_port = "0", .proxy = &bad.o};
    /* v1 is a stream's: a datagram endpoint takes v2 only. */
    ck_assert_ptr_null(cio_loop_create_datagram_endpoint(loop, dgram_factory, NULL, &o));
    dgram_rec_t r = {.base = {&dgram_ops}};
    o.proxy = &t.o;
    cio_future_t *f = cio_loop_create_datagram_endpoint(loop, dgram_factory, &r, &o);
    memset(&t, 0, sizeof(t)); /* copied at the call */
    ck_assert_int_eq(await_ok(f), 0);
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(r.t, "proxy", &info), -ENOENT);
    ck_assert_int_eq(cio_transport_get_extra_info(r.t, "sockname", &info), 0);
    char port[16], out[4096];
    snprintf(port, sizeof(port), "%u", ntohs(((struct sockaddr_in *)&info.addr)->sin_port));
    run_peer(out, sizeof(out), "udp", port, NULL);
    ck_assert_int_eq(r.received, 11); /* 5 good, 5 after a bad one, 1 after the stranger */
    ck_assert_int_eq(cio_transport_get_extra_info(r.t, "proxy", &info), -ENOENT);
    /* One line per dropped datagram, naming its sender and why. */
    ck_assert_int_eq(count_of(log->text, "datagram from 127.0.0.1:"), 5);
    ck_assert_int_eq(count_of(log->text, "datagram from 127.0.0.2:"), 1);
    char needle[160];
    snprintf(needle, sizeof(needle), "dropped: %s", cio_strerror(CIO_EPROXYMISSING));
    ck_assert_int_eq(count_of(log->text, needle), 1);
    snprintf(needle, sizeof(needle), "dropped: %s", cio_strerror(CIO_EPROXYUNTRUSTED));
    ck_assert_int_eq(count_of(log->text, needle), 1);
    log_release(log);
    cio_transport_close(r.t);
    cio_sleep(0.01);
    return 0;
}

/*
 * PROXY v2 over UDP, from python3: each datagram's header gives the client's
 * addresses and TLVs for the time of its datagram_received, the reply goes
 * back to the sender; datagrams without a good v2 header for a datagram, or
 * from an untrusted sender, are dropped with a log line and answer nothing.
 */
START_TEST(test_datagrams_carry_a_v2_header_each)
{
    if (!have_python())
        return;
    ck_assert_int_eq(cio_run(udp_fn, NULL, false, NULL), 0);
}
END_TEST

static Suite *proxy_suite(void)
{
    Suite *s = suite_create("proxy");
    TCase *tc = cio_test_case("end to end");
    tcase_set_timeout(tc, 120); /* hundreds of connections; slower under sanitizers */
    tcase_add_unchecked_fixture(tc, pki_setup, NULL);
    CIO_TEST(tc, test_every_header_kind_gives_its_addresses_and_tlvs);
    CIO_TEST(tc, test_header_and_request_arrive_intact_however_cut);
    CIO_TEST(tc, test_tls_handshake_follows_the_header_split_or_coalesced);
    CIO_TEST(tc, test_bad_peers_are_refused_logged_and_disturb_no_one);
    CIO_TEST(tc, test_a_burst_of_bad_peers_logs_ten_lines_a_second);
    CIO_TEST(tc, test_server_copies_the_proxy_options_at_the_call);
    CIO_TEST(tc, test_a_peer_gone_before_accept_is_not_called_untrusted);
    CIO_TEST(tc, test_sharded_reuseport_workers_read_the_header);
    CIO_TEST(tc, test_sharded_handoff_workers_read_the_header);
    CIO_TEST(tc, test_datagrams_carry_a_v2_header_each);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(proxy_suite)
