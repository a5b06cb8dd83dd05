/*
 * tools/bench.h: what the parts of coreio-bench share. The command line
 * (coreio-bench.c) fills a bench_config_t; each worker thread runs one
 * bench_thread_t (bench_run.c), the connections of that thread on its loop,
 * and counts what happens in a bench_stats_t that the main thread merges once
 * the thread has stopped.
 */
#ifndef COREIO_BENCH_H
#define COREIO_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <coreio.h>

#include "bench_hist.h"
#include "bench_line.h"

/** Latencies are tracked from 1 ns up to this, 60 s in nanoseconds. */
#define BENCH_HIST_HIGHEST (60ull * 1000 * 1000 * 1000)

/** udp: a datagram starts with its slot and sequence number, two uint32_t. */
#define BENCH_UDP_HEADER 8

/** What the connections do. */
typedef enum bench_mode {
    BENCH_ECHO = 0, /* TCP: SIZE bytes out, SIZE bytes back */
    BENCH_UDP,      /* connected UDP: a SIZE-byte datagram and its echo */
    BENCH_HTTP,     /* HTTP/1.1 GET with keep-alive */
    BENCH_LINE,     /* TCP: a request line from a template, a response line back */
} bench_mode_t;

/** The run as the command line asked for it; read-only once the workers start. */
typedef struct bench_config {
    bench_mode_t mode;
    const char *host, *port, *path;
    size_t conns, threads, size, depth;
    double duration, warmup; /* seconds */
    bool json, pin;
    char *request; /* echo, udp: SIZE bytes to send; http: the GET request */
    size_t request_len;
    bench_lines_t *lines;       /* line: the templates (their {n} counter is shared) */
    const char *expect;         /* line: the prefix every response must start with, or NULL */
    uint64_t seed;              /* line: seeds the connections' PRNGs */
    bool new_conn;              /* a new connection for every request, closed once it is answered */
    bool tls, tls_resume;       /* the stream modes speak TLS; new handshakes resume a session */
    const char *tls_ca;         /* the CA file the server's chain is verified against */
    const char *tls_servername; /* the name checked and sent (SNI), or NULL: the host */
    struct ssl_ctx_st *tls_ctx; /* the client context (bench_tls.h), shared by the threads */
} bench_config_t;

/** Kinds of error, counted apart. */
typedef enum bench_err_kind {
    BENCH_ERR_CONNECT = 0, /* the connection (or endpoint) could not be made */
    BENCH_ERR_CLOSED,      /* reset, closed by the peer, or an ICMP error */
    BENCH_ERR_BAD,         /* a reply that does not parse or was not asked for */
    BENCH_ERR_UNEXPECTED,  /* line: a response not starting with the expected prefix */
    BENCH_ERR_KINDS,
} bench_err_kind_t;

/** What one thread counted during the measured window. */
typedef struct bench_stats {
    uint64_t requests; /* completed: echoed in full, or a whole response */
    uint64_t errors[BENCH_ERR_KINDS];
    uint64_t lost;    /* udp: datagrams not answered within the timeout */
    uint64_t non_2xx; /* http: completed responses whose status is not 2xx */
    uint64_t bytes_in, bytes_out;
    uint64_t connections;              /* connections made (TLS: handshakes done) */
    uint64_t resumed;                  /* TLS: of those, handshakes that resumed a session */
    char tls_version[16];              /* TLS: the first connection's protocol version */
    char tls_cipher[64];               /* and cipher suite; "" until one is made */
    double seconds;                    /* length of the measured window */
    bench_err_kind_t first_error_kind; /* the first error seen, even in the warm-up: */
    char first_error[256];             /* what it was; "" while there was none */
    bench_hist_t latency;              /* nanoseconds, from send to complete reply */
} bench_stats_t;

typedef struct bench_thread bench_thread_t;

/**
 * Make the state of one thread running @p nconns connections on @p loop,
 * numbered from @p first across the run, with everything they need
 * allocated up front. NULL when out of memory. Any thread; it is handed to
 * the loop's thread through its mailbox.
 */
bench_thread_t *bench_thread_new(const bench_config_t *cfg, cio_loop_t *loop, size_t nconns,
                                 size_t first);

/** The loop the thread's connections run on. Any thread. */
cio_loop_t *bench_thread_loop(const bench_thread_t *t);

/** Start opening the connections and start the clock. Returns 0 or an error. Loop thread. */
int bench_thread_start(bench_thread_t *t);

/** End of the warm-up: forget what was counted so far and restart the clock. Loop thread. */
void bench_thread_begin(bench_thread_t *t);

/**
 * Inside a task on the thread's loop: stop counting, close every connection
 * and wait until all are gone (aborting those that linger). Returns 0 or an
 * error. The stats are final afterwards.
 */
int bench_thread_stop(bench_thread_t *t);

/** The thread's counters: final once bench_thread_stop() has returned. */
const bench_stats_t *bench_thread_stats(const bench_thread_t *t);

/** Free a thread whose loop no longer runs its connections. NULL is ignored. */
void bench_thread_free(bench_thread_t *t);

#endif /* COREIO_BENCH_H */
