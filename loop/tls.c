/*
 * loop/tls.c: TLS inside a stream transport (ssl= and start_tls share it).
 *
 * OpenSSL talks to the transport through a BIO of ours: reads come straight
 * from the socket into OpenSSL's record buffer (after any bytes start_tls
 * was given), and writes go to the socket at once or, for what it does not
 * take, into the transport's own write buffer, so encrypted bytes take the
 * plain transport's write path, water marks and close list unchanged. A
 * memory-BIO pair (asyncio's sslproto) copies every byte once more and
 * keeps two growing buffers per connection; docs/ARCHITECTURE.md has the
 * measurement. The BIO never asks OpenSSL to retry a write, so SSL_write
 * either takes all its bytes or fails the connection: a write stays all or
 * nothing.
 *
 * States: HANDSHAKE (the protocol has not heard connection_made), OPEN,
 * CLOSING (close_notify queued), DEAD (failed or aborted: OpenSSL is not
 * called again). Every OpenSSL call on the loop thread starts with an empty
 * error queue and leaves it empty.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "coreio/tls.h"
#include "internal.h"

enum tls_state { TLS_HANDSHAKE, TLS_OPEN, TLS_CLOSING, TLS_DEAD };

#define GATHER_MAX 4096 /* writelines pieces up to this total go out as one record */

typedef struct cio__tls {
    SSL *ssl;
    uint8_t state;
    bool eof;        /* recv() saw the end of the stream */
    bool short_read; /* the last recv() had less than asked: the socket is drained */
    bool courtesy;   /* aborting: a close_notify is sent if the socket takes it, never buffered */
    int sys_err;     /* what failed inside the BIO: a socket error or -ENOMEM */
    double handshake_timeout, shutdown_timeout;
    cio_handle_t timer;    /* the handshake's, then the shutdown's */
    cio_handle_t pump;     /* reads what OpenSSL holds after a resume or a full buffer */
    cio_future_t *upgrade; /* start_tls's future, until it is settled */
    uint8_t *in;           /* bytes of the TLS stream read before TLS started (start_tls) */
    size_t in_off, in_len;
} cio__tls_t;

/*
 * Empty the thread's OpenSSL error queue, before and after each call, so that
 * one connection's (or the application's) errors are never read as another's.
 * Looking first is four times cheaper than clearing, which in OpenSSL 3.0
 * resets every slot of the queue (838 instructions): on the record path,
 * where the queue is empty, that was 8% of a small TLS request.
 */
static inline void err_clear(void)
{
    if (ERR_peek_error())
        ERR_clear_error();
}

/* ---- the BIO between OpenSSL and the transport ------------------------------------- */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_read(BIO *b, char *out, int outl)
{
    cio_transport_t *t = BIO_get_data(b);
    cio__tls_t *s = t->tls;
    BIO_clear_retry_flags(b);
    if (outl <= 0)
        return 0;
    if (s->in_len > 0) { /* what start_tls was given comes first */
        size_t n = s->in_len < (size_t)outl ? s->in_len : (size_t)outl;
        memcpy(out, s->in + s->in_off, n);
        s->in_off += n;
        s->in_len -= n;
        return (int)n;
    }
    ssize_t n = recv(t->fd, out, (size_t)outl, 0);
    if (n > 0) {
        s->short_read = n < outl;
        cio__transport_traffic(t, (size_t)n, 0);
        return (int)n;
    }
    if (n == 0) {
        s->eof = true;
        return 0;
    }
    if (errno == EAGAIN || errno == EINTR) {
        s->short_read = true;
        BIO_set_retry_read(b);
        return -1;
    }
    s->sys_err = -errno;
    return -1;
}

static int bio_write(BIO *b, const char *data, int len)
{
    cio_transport_t *t = BIO_get_data(b);
    cio__tls_t *s = t->tls;
    BIO_clear_retry_flags(b);
    if (t->lost) {
        s->sys_err = -EPIPE;
        return -1;
    }
    size_t sent = 0;
    if (t->wlen == 0) {
        ssize_t n = send(t->fd, data, (size_t)len, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            s->sys_err = -errno;
            return -1;
        }
        sent = n > 0 ? (size_t)n : 0;
        cio__transport_traffic(t, 0, sent);
        if (sent == (size_t)len || s->courtesy)
            return len;
    }
    if (cio__transport_buffer_reserve(t, (size_t)len - sent) < 0) {
        s->sys_err = -ENOMEM;
        return -1;
    }
    cio__transport_buffer_put(t, data + sent, (size_t)len - sent);
    int rc = cio__transport_watch_writes(t);
    if (rc < 0) {
        s->sys_err = rc;
        return -1;
    }
    return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH; /* writes are never held back */
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/* Made once per process; it lives as long as the process. */
static void bio_method_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "coreio transport");
    if (m && BIO_meth_set_read(m, bio_read) && BIO_meth_set_write(m, bio_write) &&
        BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create)) {
        bio_method = m;
        return;
    }
    BIO_meth_free(m);
}

/* ---- errors ------------------------------------------------------------------------- */

bool cio__tls_quiet_error(int err)
{
    /* A peer's TLS failure is its own business, as a reset is (asyncio logs both in debug). */
    return err <= CIO_ETLS && err >= CIO_ETLSNOPEERCERT;
}

static int verify_error(long v)
{
    switch (v) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return CIO_ETLSHOSTNAME;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return CIO_ETLSEXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return CIO_ETLSNOTYETVALID;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: /* the peer sent its root along: not ours */
        return CIO_ETLSUNKNOWNCA;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        return CIO_ETLSSELFSIGNED;
    default:
        return CIO_ETLSVERIFY;
    }
}

/* OpenSSL's reason for a failed handshake or record, as one of coreio's codes. */
static int reason_error(SSL *ssl, int reason)
{
    switch (reason) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        return verify_error(SSL_get_verify_result(ssl));
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        return CIO_ETLSNOPEERCERT;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return CIO_ETLSTRUNCATED;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_UNKNOWN_PROTOCOL:
        return CIO_ETLSNOTTLS;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        return CIO_ETLSVERSION;
    case SSL_R_NO_SHARED_CIPHER:
        return CIO_ETLSNOCIPHER;
    case SSL_R_NO_RENEGOTIATION:
    case SSL_R_TLSV1_ALERT_NO_RENEGOTIATION:
    case SSL_R_UNSAFE_LEGACY_RENEGOTIATION_DISABLED:
        return CIO_ETLSRENEGOTIATION;
    default: /* the alerts a peer sends come as reasons past SSL_AD_REASON_OFFSET */
        return reason >= SSL_AD_REASON_OFFSET ? CIO_ETLSALERT : CIO_ETLS;
    }
}

/* What made the call fail with @p ssl_err; OpenSSL's own words go into @p why. */
static int tls_error(cio__tls_t *s, int ssl_err, char *why, size_t whylen)
{
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, why, whylen);
    else
        snprintf(why, whylen, "SSL error %d", ssl_err);
    if (s->sys_err)
        return s->sys_err;
    if (ssl_err == SSL_ERROR_SYSCALL || (ssl_err == SSL_ERROR_SSL && !e))
        return s->eof ? CIO_ETLSTRUNCATED : CIO_ETLS;
    if (ssl_err != SSL_ERROR_SSL || ERR_GET_LIB(e) != ERR_LIB_SSL)
        return CIO_ETLS;
    return reason_error(s->ssl, ERR_GET_REASON(e));
}

/* The handshake's waiters hear @p err (0: success, the transport is the result). */
static void settle(cio_transport_t *t, int err)
{
    cio__tls_t *s = t->tls;
    cio_future_t *futs[2] = {t->waiter, s->upgrade};
    for (int i = 0; i < 2; i++) {
        if (!futs[i] || cio_future_done(futs[i]))
            continue;
        if (err)
            cio_future_set_error(futs[i], err, cio_strerror(err));
        else
            cio_future_set_result(futs[i], t);
    }
    cio_future_unref(s->upgrade);
    s->upgrade = NULL;
}

/* The TLS layer failed: the waiters hear it first, then the connection goes. */
static void tls_fail(cio_transport_t *t, int err, const char *why)
{
    cio__tls_t *s = t->tls;
    s->state = TLS_DEAD;
    err_clear();
    settle(t, err); /* also when the BIO already closed the transport: nobody waits forever */
    if (t->lost)
        return;
    if (t->loop->debug) /* as asyncio: a peer's TLS failure is logged in debug mode only */
        cio__log(CIO_LOG_DEBUG, "TLS on socket %d: %s (%s)", t->fd, cio_strerror(err), why);
    cio__transport_fatal(t, err, why, false);
}

static void fail_with(cio_transport_t *t, int ssl_err)
{
    char why[256];
    int err = tls_error(t->tls, ssl_err, why, sizeof(why));
    tls_fail(t, err, why);
}

/* ---- the handshake ------------------------------------------------------------------- */

static void read_app(cio_transport_t *t);

/* Done: the protocol hears connection_made, then the waiters get the transport. */
static int handshake_done(cio_transport_t *t)
{
    cio__tls_t *s = t->tls;
    cio_handle_cancel(s->timer);
    s->timer = (cio_handle_t){0};
    s->state = TLS_OPEN;
    const cio_protocol_ops_t *ops = t->protocol->ops;
    if (ops->connection_made) {
        int rc = ops->connection_made(t->protocol, t);
        if (rc < 0) {
            settle(t, rc);
            cio__transport_fatal(t, rc, "protocol.connection_made() failed", true);
            return -1;
        }
    }
    settle(t, 0);
    return 1;
}

/* One step: 1 when done, 0 while it waits for the peer, -1 when it failed. */
static int handshake_step(cio_transport_t *t)
{
    cio__tls_t *s = t->tls;
    err_clear();
    int r = SSL_do_handshake(s->ssl);
    if (r == 1)
        return handshake_done(t);
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ && !s->sys_err && !t->lost) {
        err_clear();
        return 0;
    }
    fail_with(t, e);
    return -1;
}

static int handshake_expired(void *arg)
{
    cio_transport_t *t = arg;
    t->tls->timer = (cio_handle_t){0};
    if (t->tls->state == TLS_HANDSHAKE)
        tls_fail(t, CIO_ETLSHANDSHAKETIMEOUT, "no TLS handshake in time");
    return 0;
}

void cio__tls_begin(cio_transport_t *t)
{
    cio__tls_t *s = t->tls;
    assert(s->state == TLS_HANDSHAKE && t->made);
    int rc = cio_loop_call_later(t->loop, s->handshake_timeout, handshake_expired, t, &s->timer);
    if (rc < 0)
        tls_fail(t, rc, "cannot arm the TLS handshake timeout");
    else if (handshake_step(t) == 1)
        read_app(t);
}

/* ---- reading --------------------------------------------------------------------------- */

static int pump(void *arg)
{
    cio_transport_t *t = arg;
    t->tls->pump = (cio_handle_t){0};
    read_app(t);
    return 0;
}

/* Come back for what OpenSSL holds: the socket will not say it is readable for that. */
static void schedule_pump(cio_transport_t *t)
{
    cio__tls_t *s = t->tls;
    if (cio__handle_pending(s->pump))
        return;
    int rc = cio_loop_call_soon(t->loop, pump, t, &s->pump);
    if (rc < 0)
        cio__transport_fatal(t, rc, "cannot schedule a TLS read", false);
}

/* Whether nothing is left to decrypt until the socket says otherwise. */
static bool drained(const cio__tls_t *s)
{
    return s->short_read && s->in_len == 0 && !SSL_has_pending(s->ssl);
}

/*
 * Decrypt into @p buf until it is full (SSL_ERROR_NONE is returned), the
 * socket is drained (SSL_ERROR_WANT_READ) or SSL_read fails; *@p got counts
 * the plaintext.
 */
static int decrypt(cio__tls_t *s, uint8_t *buf, size_t cap, size_t *got)
{
    *got = 0;
    while (*got < cap) {
        size_t want = cap - *got < INT_MAX ? cap - *got : INT_MAX;
        err_clear();
        int n = SSL_read(s->ssl, buf + *got, (int)want);
        if (n <= 0)
            return SSL_get_error(s->ssl, n);
        *got += (size_t)n;
        if (drained(s))
            return SSL_ERROR_WANT_READ;
    }
    return SSL_ERROR_NONE;
}

/* Plaintext for the protocol: its own buffer (BufferedProtocol) or the loop's. */
static int deliver(cio_transport_t *t, int *ssl_err)
{
    const cio_protocol_ops_t *ops = t->protocol->ops;
    size_t got;
    if (ops->get_buffer) {
        size_t len = 0;
        void *buf = ops->get_buffer(t->protocol, CIO__READ_BUF_SIZE, &len);
        if (!buf || len == 0)
            return -ENOBUFS;
        *ssl_err = decrypt(t->tls, buf, len, &got);
        return got && ops->buffer_updated ? ops->buffer_updated(t->protocol, got) : 0;
    }
    if (!t->loop->read_buf && !(t->loop->read_buf = malloc(CIO__READ_BUF_SIZE)))
        return -ENOMEM;
    *ssl_err = decrypt(t->tls, t->loop->read_buf, CIO__READ_BUF_SIZE, &got);
    return got && ops->data_received ? ops->data_received(t->protocol, t->loop->read_buf, got)
                                     : 0;
}

/* The peer's close_notify: eof_received (TLS has no half-close), then our own close. */
static void peer_closed(cio_transport_t *t)
{
    const cio_protocol_ops_t *ops = t->protocol->ops;
    int rc = ops->eof_received ? ops->eof_received(t->protocol) : 0;
    if (rc < 0)
        cio__transport_fatal(t, rc, "protocol.eof_received() failed", true);
    else
        cio_transport_close(t);
}

static void read_app(cio_transport_t *t)
{
    cio__tls_t *s = t->tls;
    if (t->lost || t->closing || t->paused || s->state != TLS_OPEN)
        return;
    int ssl_err = SSL_ERROR_WANT_READ;
    int rc = deliver(t, &ssl_err);
    if (rc < 0) {
        bool ours = rc == -ENOMEM;
        cio__transport_fatal(t, rc, ours ? "no memory for a read" : "protocol read callback failed",
                             !ours);
        return;
    }
    if (t->lost || s->state != TLS_OPEN)
        return;
    if (ssl_err == SSL_ERROR_WANT_READ && !s->sys_err) {
        err_clear();
    } else if (ssl_err == SSL_ERROR_NONE) {
        if (!t->paused && !t->closing)
            schedule_pump(t); /* a full buffer: the rest in the next round, others go first */
    } else if (ssl_err == SSL_ERROR_ZERO_RETURN) {
        err_clear();
        if (!t->paused && !t->closing)
            peer_closed(t); /* when paused, resume_reading() brings it back here */
    } else {
        fail_with(t, ssl_err);
    }
}

int cio__tls_on_readable(cio_transport_t *t)
{
    cio__tls_t *s = t->tls;
    s->short_read = false;
    if (s->state == TLS_HANDSHAKE && handshake_step(t) <= 0)
        return 0;
    read_app(t);
    return 0;
}

void cio__tls_resumed(cio_transport_t *t)
{
    if (t->tls->state == TLS_OPEN)
        schedule_pump(t);
}

/* ---- writing --------------------------------------------------------------------------- */

static int encrypt(cio_transport_t *t, const void *data, size_t len)
{
    cio__tls_t *s = t->tls;
    const uint8_t *p = data;
    while (len > 0) {
        int chunk = len < INT_MAX / 2 ? (int)len : INT_MAX / 2;
        err_clear();
        int n = SSL_write(s->ssl, p, chunk);
        if (n <= 0) {
            int nomem = s->sys_err == -ENOMEM;
            fail_with(t, SSL_get_error(s->ssl, n));
            return nomem ? -ENOMEM : 0; /* as a plain transport: a socket error is reported by close */
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int cio__tls_writev(cio_transport_t *t, const struct iovec *iov, int iovcnt, size_t total)
{
    if (t->tls->state != TLS_OPEN)
        return -ENOTCONN; /* start_tls's handshake is still going */
    int rc = 0;
    if (iovcnt > 1 && total <= GATHER_MAX) {
        /* Small pieces (a header and its body) make one record, not one each. */
        uint8_t buf[GATHER_MAX];
        size_t off = 0;
        for (int i = 0; i < iovcnt; i++) {
            memcpy(buf + off, iov[i].iov_base, iov[i].iov_len);
            off += iov[i].iov_len;
        }
        rc = encrypt(t, buf, off);
    } else {
        for (int i = 0; i < iovcnt && rc == 0 && !t->lost; i++)
            rc = encrypt(t, iov[i].iov_base, iov[i].iov_len);
    }
    if (rc == 0 && !t->lost)
        cio__transport_maybe_pause(t);
    return rc;
}

/* ---- closing ---------------------------------------------------------------------------- */

static int shutdown_expired(void *arg)
{
    cio_transport_t *t = arg;
    t->tls->timer = (cio_handle_t){0};
    cio__transport_force_close(t, CIO_ETLSSHUTDOWNTIMEOUT);
    return 0;
}

/* close(): queue close_notify after what is buffered; the shutdown timeout bounds the wait. */
void cio__tls_close(cio_transport_t *t)
{
    cio__tls_t *s = t->tls;
    if (s->state == TLS_HANDSHAKE) {
        s->state = TLS_DEAD;
        settle(t, -ECONNABORTED);
        return;
    }
    if (s->state != TLS_OPEN)
        return;
    s->state = TLS_CLOSING;
    err_clear();
    if (SSL_shutdown(s->ssl) < 0 && (s->sys_err || t->lost)) {
        /* After the peer's close_notify, a peer already gone takes nothing from a clean end. */
        if (SSL_get_shutdown(s->ssl) & SSL_RECEIVED_SHUTDOWN) {
            s->state = TLS_DEAD;
            err_clear();
            cio__transport_force_close(t, 0);
        } else {
            fail_with(t, SSL_ERROR_SYSCALL);
        }
        return;
    }
    err_clear();
    if (t->wlen == 0)
        return;
    int rc = cio_loop_call_later(t->loop, s->shutdown_timeout, shutdown_expired, t, &s->timer);
    if (rc < 0) /* without its bound the close could wait forever */
        cio__transport_force_close(t, rc);
}

/*
 * abort(): nothing buffered is sent, but when nothing is buffered a close_notify
 * that fits in the socket goes, so the peer knows it lost nothing.
 */
void cio__tls_abort(cio_transport_t *t)
{
    cio__tls_t *s = t->tls;
    if (s->state == TLS_OPEN && t->wlen == 0 && !t->lost) {
        s->courtesy = true;
        err_clear();
        SSL_shutdown(s->ssl);
        err_clear();
    }
    if (s->state == TLS_HANDSHAKE)
        settle(t, -ECONNABORTED);
    s->state = TLS_DEAD;
}

/* ---- the rest ------------------------------------------------------------------------------ */

int cio__tls_extra_info(cio_transport_t *t, const char *name, cio_extra_info_t *info)
{
    SSL *ssl = t->tls->ssl;
    if (strcmp(name, "ssl_object") == 0)
        info->object = ssl;
    else if (strcmp(name, "sslcontext") == 0)
        info->object = SSL_get_SSL_CTX(ssl);
    else if (strcmp(name, "peercert") == 0)
        info->object = SSL_get0_peer_certificate(ssl);
    else if (strcmp(name, "compression") == 0)
        info->name = NULL; /* coreio's contexts never compress (CRIME) */
    else if (strcmp(name, "cipher") == 0) {
        const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
        if (!c)
            return -ENOENT;
        info->name = SSL_CIPHER_get_name(c);
        info->version = SSL_get_version(ssl);
        info->bits = SSL_CIPHER_get_bits(c, NULL);
    } else {
        return 1; /* not a TLS key */
    }
    return 0;
}

/* The client checks the server's name: a DNS name (also sent as SNI) or an IP address. */
static int expect_peer(SSL *ssl, const char *host)
{
    unsigned char addr[16];
    if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) ? 0 : -ENOMEM;
    return SSL_set_tlsext_host_name(ssl, host) && SSL_set1_host(ssl, host) ? 0 : -ENOMEM;
}

static SSL *ssl_new(cio_transport_t *t, const cio__tls_params_t *p)
{
    SSL *ssl = SSL_new(p->ctx);
    BIO *bio = ssl ? BIO_new(bio_method) : NULL;
    if (!bio) {
        SSL_free(ssl);
        return NULL;
    }
    BIO_set_data(bio, t);
    SSL_set_bio(ssl, bio, bio); /* one BIO both ways: SSL takes our one reference */
    SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    SSL_set_read_ahead(ssl, 1); /* one recv() per socket wake-up, not one per record header */
    if (p->server_side) {
        SSL_set_accept_state(ssl);
    } else {
        SSL_set_connect_state(ssl);
        if ((p->hostname && expect_peer(ssl, p->hostname) < 0) ||
            (p->session && !SSL_set_session(ssl, p->session))) {
            SSL_free(ssl);
            return NULL;
        }
    }
    return ssl;
}

int cio__tls_attach(cio_transport_t *t, const cio__tls_params_t *p)
{
    assert(!t->tls && p->ctx);
    pthread_once(&bio_once, bio_method_make);
    cio__tls_t *s = bio_method ? calloc(1, sizeof(*s)) : NULL;
    if (!s)
        return -ENOMEM;
    err_clear();
    t->tls = s; /* the BIO reaches the layer through the transport */
    s->ssl = ssl_new(t, p);
    err_clear();
    if (!s->ssl) {
        t->tls = NULL;
        free(s);
        return -ENOMEM;
    }
    s->handshake_timeout = p->handshake_timeout > 0 ? p->handshake_timeout : CIO_TLS_HANDSHAKE_TIMEOUT;
    s->shutdown_timeout = p->shutdown_timeout > 0 ? p->shutdown_timeout : CIO_TLS_SHUTDOWN_TIMEOUT;
    return 0;
}

void cio__tls_free(cio_transport_t *t)
{
    cio__tls_t *s = t->tls;
    cio_handle_cancel(s->timer);
    cio_handle_cancel(s->pump);
    SSL_free(s->ssl);
    err_clear();
    cio_future_unref(s->upgrade);
    free(s->in);
    free(s);
    t->tls = NULL;
}

static bool timeouts_valid(const cio_tls_opts_t *o)
{
    return !o || (o->handshake_timeout >= 0 && o->shutdown_timeout >= 0 &&
                  o->handshake_timeout < 1e9 && o->shutdown_timeout < 1e9 &&
                  (o->initial_data || o->initial_len == 0));
}

cio_future_t *cio_loop_start_tls(cio_loop_t *loop, cio_transport_t *t, cio_protocol_t *protocol,
                                 SSL_CTX *ctx, bool server_side, const char *server_hostname,
                                 const cio_tls_opts_t *opts)
{
    if (!loop || !t || t->loop != loop || !protocol || !protocol->ops || !ctx ||
        t->kind != CIO__STREAM || t->pipe || t->tls || t->closing || t->sendfile_active ||
        !timeouts_valid(opts))
        return NULL;
    assert(!cio__wrong_thread(loop));
    cio_tls_opts_t o = opts ? *opts : (cio_tls_opts_t){0};
    cio__tls_params_t p = {ctx, server_side, server_hostname, o.handshake_timeout,
                           o.shutdown_timeout, o.session};
    cio_future_t *fut = cio_loop_create_future(loop);
    uint8_t *in = o.initial_len ? malloc(o.initial_len) : NULL;
    if (!fut || (o.initial_len && !in) || cio__tls_attach(t, &p) < 0) {
        free(in);
        cio_future_unref(fut);
        return NULL;
    }
    if (in)
        memcpy(in, o.initial_data, o.initial_len);
    t->tls->in = in;
    t->tls->in_len = o.initial_len;
    t->tls->upgrade = cio_future_ref(fut);
    t->protocol = protocol; /* the old protocol hears nothing more */
    if (t->made) {
        t->paused = false; /* the handshake reads whatever the old protocol wanted */
        int rc = cio__transport_read_start(t);
        if (rc < 0)
            tls_fail(t, rc, "cannot watch the socket");
        else
            cio__tls_begin(t);
    }
    return fut;
}
