/*
 * tools/bench_tls.c: coreio-bench's client context and session pools.
 *
 * The new-session callback (client session caching, with OpenSSL's own
 * store off) puts every session a server hands out, tickets included, into
 * the pool of the thread that received it; a new connection takes one as its
 * ssl_session option. A TLS 1.3 ticket is taken out when used, so it serves
 * once (RFC 8446, C.4); a TLS 1.2 session stays, as a server resuming one
 * need not send another.
 */
#include <errno.h>
#include <stdlib.h>

#include "bench_tls.h"

struct bench_tls_sessions {
    SSL_SESSION **ring; /* oldest at tail, newest just before head */
    size_t cap, head, count;
};

/* The pool of this thread's handshakes; NULL on threads that keep none. */
static __thread bench_tls_sessions_t *thread_pool;

SSL_SESSION *bench_tls_sessions_take(bench_tls_sessions_t *s)
{
    if (s->count == 0)
        return NULL;
    size_t newest = (s->head + s->cap - 1) % s->cap;
    SSL_SESSION *sess = s->ring[newest];
    if (SSL_SESSION_get_protocol_version(sess) < TLS1_3_VERSION)
        return SSL_SESSION_up_ref(sess) ? sess : NULL;
    s->ring[newest] = NULL;
    s->head = newest;
    s->count--;
    return sess;
}

/* Keep @p sess (the caller's reference) in @p s, dropping the oldest when full. */
static void pool_push(bench_tls_sessions_t *s, SSL_SESSION *sess)
{
    if (s->count == s->cap) {
        size_t tail = (s->head + s->cap - s->count) % s->cap;
        SSL_SESSION_free(s->ring[tail]);
        s->ring[tail] = NULL;
        s->count--;
    }
    s->ring[s->head] = sess;
    s->head = (s->head + 1) % s->cap;
    s->count++;
}

/* A server handed out a session (or a TLS 1.3 ticket): 1 keeps our reference. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    bench_tls_sessions_t *s = thread_pool;
    if (!s || !SSL_SESSION_is_resumable(sess))
        return 0;
    pool_push(s, sess);
    return 1;
}

int bench_tls_context(SSL_CTX **out, const char *cafile, bool resume)
{
    int rc = cio_tls_client_context(out, cafile);
    if (rc < 0 || !resume)
        return rc;
    SSL_CTX *ctx = *out;
    /* Client caching only calls new_session_cb; OpenSSL's store would only grow. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    return 0;
}

bench_tls_sessions_t *bench_tls_sessions_new(size_t cap)
{
    bench_tls_sessions_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cap = cap ? cap : 1;
    s->ring = calloc(s->cap, sizeof(*s->ring));
    if (!s->ring) {
        free(s);
        return NULL;
    }
    return s;
}

void bench_tls_sessions_attach(bench_tls_sessions_t *s)
{
    thread_pool = s;
}

size_t bench_tls_sessions_count(const bench_tls_sessions_t *s)
{
    return s->count;
}

void bench_tls_sessions_free(bench_tls_sessions_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->cap; i++)
        SSL_SESSION_free(s->ring[i]);
    free(s->ring);
    free(s);
}

int bench_tls_info(cio_transport_t *t, bench_tls_info_t *info)
{
    cio_extra_info_t cipher, object;
    if (cio_transport_get_extra_info(t, "cipher", &cipher) < 0 ||
        cio_transport_get_extra_info(t, "ssl_object", &object) < 0 || !object.object)
        return -ENOENT;
    info->version = cipher.version;
    info->cipher = cipher.name;
    info->resumed = SSL_session_reused(object.object) == 1;
    return 0;
}
