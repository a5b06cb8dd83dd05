/*
 * tools/bench_tls.h: the TLS side of coreio-bench (--tls, --tls-resume). The
 * run has one client context, made before the workers start and shared by
 * all of them (OpenSSL locks what an SSL_CTX shares). With --tls-resume each
 * thread keeps the sessions its connections were given in a pool of its own,
 * and every new connection on that thread takes one (the newest) to resume,
 * as its ssl_session option.
 */
#ifndef COREIO_BENCH_TLS_H
#define COREIO_BENCH_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <coreio.h>
#include <coreio/tls.h>

/** Sessions kept per connection of a thread (TLS 1.3 servers send two tickets). */
#define BENCH_TLS_SESSIONS_PER_CONN 2

/**
 * The run's client context: the server's chain verified against @p cafile,
 * and with @p resume the sessions caught for the pool of the thread that made
 * the connection. 0 and *@p out, or cio_tls_client_context()'s error.
 * Call once, before any worker runs.
 */
int bench_tls_context(SSL_CTX **out, const char *cafile, bool resume);

/** One thread's pool of sessions to resume. */
typedef struct bench_tls_sessions bench_tls_sessions_t;

/** A pool holding up to @p cap sessions, or NULL when out of memory. */
bench_tls_sessions_t *bench_tls_sessions_new(size_t cap);

/** Make @p s the pool of the calling thread's handshakes (NULL: none). Loop thread. */
void bench_tls_sessions_attach(bench_tls_sessions_t *s);

/**
 * The newest session of @p s for a new connection's ssl_session, or NULL
 * when empty; the caller owns the reference. A TLS 1.3 ticket leaves the
 * pool; a TLS 1.2 session stays.
 */
SSL_SESSION *bench_tls_sessions_take(bench_tls_sessions_t *s);

/** How many sessions @p s holds now. */
size_t bench_tls_sessions_count(const bench_tls_sessions_t *s);

/** Free @p s and the sessions it holds; no thread may still use it. NULL is ignored. */
void bench_tls_sessions_free(bench_tls_sessions_t *s);

/** What a TLS connection's transport says about its handshake. */
typedef struct bench_tls_info {
    const char *version; /* "TLSv1.3", borrowed from OpenSSL (static) */
    const char *cipher;  /* "TLS_AES_256_GCM_SHA384", likewise */
    bool resumed;        /* the handshake resumed a session */
} bench_tls_info_t;

/** Fill @p info from the TLS transport @p t once connected. 0 or -ENOENT (not TLS). */
int bench_tls_info(cio_transport_t *t, bench_tls_info_t *info);

#endif /* COREIO_BENCH_TLS_H */
