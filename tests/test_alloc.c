/*
 * tests/test_alloc.c: out of memory everywhere. Each test walks N = 1, 2, 3,
 * ... over one module's scenario with the Nth allocation the library makes
 * failing (the hook of loop/alloc.h), until a run meets no failure. Every run
 * must end without a crash or a hang, report each failure as -ENOMEM (or NULL
 * from a constructor, or a connection_lost with -ENOMEM), still deliver what
 * it accepted, and give back every protocol and every descriptor; ASan's leak
 * checker, at exit, judges the memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "coreio/tls.h"
#include "testutil.h"

/* loop/alloc.h's hook, exported for tests. */
void cio__alloc_fail_after(unsigned long n);
unsigned long cio__alloc_failures(void);

#define WALK_MAX 100000 /* a scenario allocating more than this has a loop */
#define HANG_S   10     /* a run taking longer has lost a wake-up */

/* ---- the walk ------------------------------------------------------------------ */

static const char *walk_name;
static unsigned long walk_n;
static int live_protocols; /* made by a factory, not yet told connection_lost */

static void on_hang(int sig)
{
    char msg[160];
    int len =
        snprintf(msg, sizeof(msg), "%s: hung with allocation %lu failing\n", walk_name, walk_n);
    if (write(STDERR_FILENO, msg, (size_t)len) < 0)
        _exit(4);
    _exit(3);
}

static void quiet_log(cio_log_level_t level, const char *message, void *arg)
{
}

/* Descriptors open in the process now. */
static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

/* Keep the first error in *@p first; every error must be running out of memory. */
static void note(int *first, int err)
{
    ck_assert_msg(err == 0 || err == -ENOMEM, "%s, allocation %lu failing: %s", walk_name, walk_n,
                  cio_err_name(err));
    if (*first == 0)
        *first = err;
}

/* A constructor's NULL is its out of memory. */
static void note_null(int *first, const void *p)
{
    if (!p)
        note(first, -ENOMEM);
}

/*
 * Run @p scenario with the 1st, 2nd, 3rd ... allocation failing, until a run
 * fails none. Returns how many runs met a failure.
 */
static unsigned long walk(const char *name, int (*scenario)(void))
{
    walk_name = name;
    cio_log_set_handler(quiet_log, NULL, CIO_LOG_DEBUG);
    signal(SIGALRM, on_hang);
    int fds = open_fds();
    for (walk_n = 1; walk_n < WALK_MAX; walk_n++) {
        alarm(HANG_S);
        cio__alloc_fail_after(walk_n);
        int rc = scenario();
        cio__alloc_fail_after(0);
        alarm(0);
        unsigned long failed = cio__alloc_failures();
        ck_assert_msg(rc == 0 || rc == -ENOMEM, "%s, allocation %lu failing: returned %s", name,
                      walk_n, cio_err_name(rc));
        ck_assert_msg(failed || rc == 0, "%s: %s with no allocation failing", name,
                      cio_err_name(rc));
        ck_assert_msg(live_protocols == 0, "%s, allocation %lu failing: %d protocols not lost",
                      name, walk_n, live_protocols);
        ck_assert_msg(open_fds() == fds, "%s, allocation %lu failing: %d descriptors leaked", name,
                      walk_n, open_fds() - fds);
        if (!failed)
            return walk_n - 1;
    }
    ck_abort_msg("%s: still allocating after %d runs", name, WALK_MAX);
    return 0;
}

/* ---- loop: call_soon, call_later, run ---------------------------------------------- */

static int count_cb(void *arg)
{
    (*(int *)arg)++;
    return 0;
}

/* More callbacks than the first slab holds, so it grows. */
static int scenario_loop(void)
{
    int rc = 0, ran = 0, scheduled = 0;
    cio_loop_t *loop = cio_loop_new();
    note_null(&rc, loop);
    if (!loop)
        return rc;
    for (int i = 0; i < 150; i++) {
        int r = cio_loop_call_soon(loop, count_cb, &ran, NULL);
        note(&rc, r);
        scheduled += r == 0;
    }
    int r = cio_loop_call_later(loop, 0.001, cio_test_stop_cb, loop, NULL);
    note(&rc, r);
    if (r < 0)
        cio_loop_stop(loop); /* one iteration still runs what is ready */
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
    ck_assert_int_eq(ran, scheduled);
    ck_assert_int_eq(cio_loop_free(loop), 0);
    return rc;
}

START_TEST(test_alloc_loop_survives_every_failure)
{
    ck_assert_uint_gt(walk("loop", scenario_loop), 0);
}
END_TEST

/* ---- timer: the heap grows, timers are cancelled and compacted ----------------------- */

#define NTIMERS 150

typedef struct timer_run {
    double when[NTIMERS];
    int fired[NTIMERS];
    int order[NTIMERS];
    int nfired;
} timer_run_t;

typedef struct timer_arg {
    timer_run_t *run;
    int i;
} timer_arg_t;

static int timer_cb(void *arg)
{
    timer_arg_t *a = arg;
    a->run->fired[a->i]++;
    a->run->order[a->run->nfired++] = a->i;
    return 0;
}

/* Timers at ten deadlines, two thirds cancelled: they must fire in order, once. */
static int scenario_timer(void)
{
    static timer_run_t run;
    static timer_arg_t args[NTIMERS];
    cio_handle_t h[NTIMERS];
    bool live[NTIMERS] = {false};
    int rc = 0;
    memset(&run, 0, sizeof(run));
    cio_loop_t *loop = cio_loop_new();
    note_null(&rc, loop);
    if (!loop)
        return rc;
    double now = cio_loop_time(loop);
    for (int i = 0; i < NTIMERS; i++) {
        args[i] = (timer_arg_t){&run, i};
        run.when[i] = now + 0.0002 * (i % 10);
        int r = cio_loop_call_at(loop, run.when[i], timer_cb, &args[i], &h[i]);
        note(&rc, r);
        live[i] = r == 0;
    }
    for (int i = 0; i < NTIMERS; i++) {
        if (i % 3 != 0 && live[i]) {
            cio_handle_cancel(h[i]);
            live[i] = false;
        }
    }
    int r = cio_loop_call_at(loop, now + 0.003, cio_test_stop_cb, loop, NULL);
    note(&rc, r);
    if (r == 0)
        ck_assert_int_eq(cio_loop_run_forever(loop), 0);
    for (int i = 0; r == 0 && i < NTIMERS; i++)
        ck_assert_int_eq(run.fired[i], live[i]);
    for (int k = 1; k < run.nfired; k++) {
        int a = run.order[k - 1], b = run.order[k];
        ck_assert(run.when[a] < run.when[b] || (run.when[a] == run.when[b] && a < b));
    }
    ck_assert_int_eq(cio_loop_free(loop), 0);
    return rc;
}

START_TEST(test_alloc_timer_survives_every_failure)
{
    ck_assert_uint_gt(walk("timer", scenario_timer), 0);
}
END_TEST

/* ---- mailbox: call_soon_threadsafe from a thread, messages left at close -------------- */

#define NMESSAGES 150

typedef struct mbox_run {
    cio_loop_t *loop;
    int sent;          /* messages accepted */
    int ran, released; /* their fates */
    int errors;        /* refusals other than -ENOMEM */
    int first;
} mbox_run_t;

typedef struct mbox_msg {
    mbox_run_t *run;
    int fate; /* 0 pending, 1 ran, 2 released */
} mbox_msg_t;

static int msg_run(void *arg)
{
    mbox_msg_t *m = arg;
    ck_assert_int_eq(m->fate, 0);
    m->fate = 1;
    m->run->ran++;
    free(m);
    return 0;
}

static int msg_release(void *arg)
{
    mbox_msg_t *m = arg;
    ck_assert_int_eq(m->fate, 0);
    m->fate = 2;
    m->run->released++;
    free(m);
    return 0;
}

/* Send one owned message; the run counts it if the loop took it. */
static void send_msg(mbox_run_t *r)
{
    mbox_msg_t *m = calloc(1, sizeof(*m));
    ck_assert_ptr_nonnull(m);
    m->run = r;
    int rc = cio_loop_call_soon_threadsafe_owned(r->loop, msg_run, m, msg_release);
    if (rc < 0)
        free(m);
    if (rc < 0 && rc != -ENOMEM)
        r->errors++;
    if (rc < 0 && !r->first)
        r->first = rc;
    r->sent += rc == 0;
}

static void *producer(void *arg)
{
    mbox_run_t *r = arg;
    for (int i = 0; i < NMESSAGES; i++)
        send_msg(r);
    /* The stop must arrive: a refused one is sent again (the hook fails once). */
    while (cio_loop_call_soon_threadsafe(r->loop, cio_test_stop_cb, r->loop) == -ENOMEM)
        r->first = r->first ? r->first : -ENOMEM;
    return NULL;
}

/* Every message taken either runs or, the loop closing first, is released: once. */
static int scenario_mailbox(void)
{
    mbox_run_t r = {0};
    int rc = 0;
    r.loop = cio_loop_new();
    note_null(&rc, r.loop);
    if (!r.loop)
        return rc;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, producer, &r), 0);
    ck_assert_int_eq(cio_loop_run_forever(r.loop), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(r.ran, r.sent);
    for (int i = 0; i < 10; i++)
        send_msg(&r); /* these wait for a loop that closes instead */
    ck_assert_int_eq(cio_loop_free(r.loop), 0);
    ck_assert_int_eq(r.errors, 0);
    ck_assert_int_eq(r.ran + r.released, r.sent);
    note(&rc, r.first);
    return rc;
}

START_TEST(test_alloc_mailbox_survives_every_failure)
{
    ck_assert_uint_gt(walk("mailbox", scenario_mailbox), 0);
}
END_TEST

/* ---- future: done callbacks, gather, wait_for ------------------------------------------ */

#define NCALLBACKS 70

typedef struct cb_count {
    int calls;
    void *seen;
} cb_count_t;

static int done_cb(cio_future_t *fut, void *arg)
{
    cb_count_t *c = arg;
    c->calls++;
    cio_future_result(fut, &c->seen);
    return 0;
}

/* More callbacks on one future than its inline array and the first slab hold, a gather, a
 * timeout: completing it schedules them all. */
static int scenario_future(void)
{
    int rc = 0;
    cb_count_t counts[NCALLBACKS] = {{0}};
    bool added[NCALLBACKS] = {false};
    cio_loop_t *loop = cio_loop_new();
    note_null(&rc, loop);
    if (!loop)
        return rc;
    cio_future_t *f[3], *never = cio_loop_create_future(loop);
    for (int i = 0; i < 3; i++)
        note_null(&rc, f[i] = cio_loop_create_future(loop));
    note_null(&rc, never);
    for (int i = 0; f[0] && i < NCALLBACKS; i++) {
        int r = cio_future_add_done_callback(f[0], done_cb, &counts[i]);
        note(&rc, r);
        added[i] = r == 0;
    }
    cio_future_t *all = f[1] && f[2] ? cio_gather(loop, &f[1], 2, NULL) : NULL;
    cio_future_t *timeout = never ? cio_wait_for(never, 0.001) : NULL;
    note_null(&rc, all);
    note_null(&rc, timeout);
    for (int i = 0; i < 3; i++)
        if (f[i])
            note(&rc, cio_future_set_result(f[i], (void *)(intptr_t)(i + 1)));
    if (all) {
        cio_outcome_t *out = NULL;
        int r = cio_loop_run_until_complete(loop, all, (void **)&out);
        note(&rc, r);
        if (r == 0)
            ck_assert(out[0].result == (void *)2 && out[1].result == (void *)3);
    }
    if (timeout) {
        int r = cio_loop_run_until_complete(loop, timeout, NULL);
        ck_assert_msg(r == -ETIMEDOUT || r == -ENOMEM, "wait_for: %s", cio_err_name(r));
        note(&rc, r == -ETIMEDOUT ? 0 : r);
    }
    /* One more iteration runs whatever f[0] scheduled. */
    cio_loop_stop(loop);
    ck_assert_int_eq(cio_loop_run_forever(loop), 0);
    for (int i = 0; i < NCALLBACKS; i++) {
        ck_assert_int_eq(counts[i].calls, added[i]);
        ck_assert(!added[i] || counts[i].seen == (void *)1);
    }
    cio_future_unref(all);
    cio_future_unref(timeout);
    cio_future_unref(never);
    for (int i = 0; i < 3; i++)
        cio_future_unref(f[i]);
    ck_assert_int_eq(cio_loop_free(loop), 0);
    return rc;
}

START_TEST(test_alloc_future_survives_every_failure)
{
    ck_assert_uint_gt(walk("future", scenario_future), 0);
}
END_TEST

/* ---- task: create, await, cancel -------------------------------------------------------- */

static int sleeper(void *arg, void **result)
{
    int rc = cio_sleep(0.001);
    *result = arg;
    return rc;
}

static int waiter(void *arg, void **result)
{
    return cio_await(arg, result);
}

/* The body of cio_run(): the first error any call met, or 0. */
static int task_main(void *arg, void **result)
{
    int rc = 0;
    cio_loop_t *loop = cio_get_running_loop();
    cio_future_t *gate = cio_loop_create_future(loop);
    cio_future_t *never = cio_loop_create_future(loop);
    note_null(&rc, gate);
    note_null(&rc, never);
    if (!gate || !never)
        goto out;
    cio_task_opts_t named = {.name = "sleeper"};
    cio_task_t *t[4] = {
        cio_loop_create_task(loop, sleeper, (void *)7, &named),
        cio_loop_create_task(loop, waiter, gate, NULL),
        cio_loop_create_task(loop, waiter, never, NULL),
        cio_loop_create_task(loop, sleeper, NULL, NULL), /* left to cio_run to cancel */
    };
    for (int i = 0; i < 4; i++)
        note_null(&rc, t[i]);
    if (t[1])
        ck_assert_ptr_nonnull(cio_task_get_name(t[1])); /* "Task-N", made when asked for */
    note(&rc, cio_future_set_result(gate, (void *)9));
    if (t[0] && t[1]) {
        cio_future_t *both[2] = {cio_task_future(t[0]), cio_task_future(t[1])};
        cio_future_t *all = cio_gather(loop, both, 2, NULL);
        note_null(&rc, all);
        cio_outcome_t *out = NULL;
        int r = all ? cio_await(all, (void **)&out) : 0;
        note(&rc, r);
        if (all && r == 0)
            ck_assert(out[0].result == (void *)7 && out[1].result == (void *)9);
        cio_future_unref(all);
    }
    if (t[2]) {
        cio_sleep(0); /* it starts and waits on never */
        ck_assert(cio_task_cancel(t[2], "enough"));
        int r = cio_await(cio_task_future(t[2]), NULL);
        ck_assert_msg(r == -ECANCELED || r == -ENOMEM, "cancelled task: %s", cio_err_name(r));
    }
    for (int i = 0; i < 4; i++)
        cio_task_unref(t[i]);
out:
    cio_future_unref(gate);
    cio_future_unref(never);
    return rc;
}

static int scenario_task(void)
{
    return cio_run(task_main, NULL, false, NULL);
}

START_TEST(test_alloc_task_survives_every_failure)
{
    ck_assert_uint_gt(walk("task", scenario_task), 0);
}
END_TEST

/* ---- protocols shared by the stream, server and datagram scenarios ------------------------ */

/* What a scenario learns of one protocol; it outlives the protocol. */
typedef struct outcome {
    size_t received;
    bool bad_byte; /* a byte out of the test pattern */
    bool lost;
    int err; /* connection_lost's */
} outcome_t;

/* A TLS peer that ran out of memory ends its side unannounced: truncation, an alert. */
static bool is_peer_tls_loss(int err)
{
    return err <= CIO_ETLS && err >= CIO_ETLSNOPEERCERT;
}

typedef struct peer {
    cio_protocol_t base;
    cio_transport_t *t;
    bool echo;      /* write back what arrives */
    outcome_t *out; /* NULL: its own */
    outcome_t own;
} peer_t;

static int peer_made(cio_protocol_t *p, cio_transport_t *t)
{
    ((peer_t *)p)->t = t;
    return 0;
}

static int peer_data(cio_protocol_t *p, const void *data, size_t len)
{
    peer_t *pe = (peer_t *)p;
    const uint8_t *b = data;
    for (size_t i = 0; i < len; i++)
        pe->out->bad_byte |= b[i] != (uint8_t)((pe->out->received + i) % 251);
    pe->out->received += len;
    return pe->echo ? cio_transport_write(pe->t, data, len) : 0;
}

static int peer_dgram(cio_protocol_t *p, const void *data, size_t len, const struct sockaddr *addr,
                      socklen_t addrlen)
{
    peer_t *pe = (peer_t *)p;
    pe->out->received += len;
    return pe->echo ? cio_transport_sendto(pe->t, data, len, addr, addrlen) : 0;
}

static void peer_lost(cio_protocol_t *p, int err)
{
    peer_t *pe = (peer_t *)p;
    /* A clean close, out of memory here, the peer's loss (it ran out), or the loop's end. */
    ck_assert_msg(
        err == 0 || err == -ENOMEM || err == -ECONNRESET || err == -EPIPE || err == CIO_ECLOSED ||
            is_peer_tls_loss(err),
        "%s, allocation %lu failing: connection_lost(%s)", walk_name, walk_n, cio_err_name(err));
    ck_assert(!pe->out->lost);
    pe->out->lost = true;
    pe->out->err = err;
    live_protocols--;
    free(pe);
}

static const cio_protocol_ops_t peer_ops = {
    .connection_made = peer_made,
    .data_received = peer_data,
    .datagram_received = peer_dgram,
    .connection_lost = peer_lost,
};

/* A protocol set up as the peer_t @p arg (NULL: a plain one) says. */
static cio_protocol_t *peer_factory(void *arg)
{
    peer_t *pe = malloc(sizeof(*pe));
    ck_assert_ptr_nonnull(pe);
    *pe = arg ? *(peer_t *)arg : (peer_t){0};
    pe->base.ops = &peer_ops;
    if (!pe->out)
        pe->out = &pe->own;
    live_protocols++;
    return &pe->base;
}

/* Tell the scenario what becomes of the protocol of @p t. */
static void watch_peer(cio_transport_t *t, outcome_t *out)
{
    peer_t *pe = (peer_t *)cio_transport_get_protocol(t);
    *out = pe->own;
    pe->out = out;
}

/* Inside a task: await @p f, noting its error; its result, or NULL. */
static void *await_noted(int *rc, cio_future_t *f)
{
    void *res = NULL;
    note_null(rc, f);
    if (!f)
        return NULL;
    int r = cio_await(f, &res);
    note(rc, r);
    cio_future_unref(f);
    return r == 0 ? res : NULL;
}

/* Inside a task: let the loop run until @p cond holds, or 5 s pass (only if something is lost:
 * passing runs take milliseconds). */
#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        double until_ = cio_loop_time(cio_get_running_loop()) + 5.0;                               \
        while (!(cond) && cio_loop_time(cio_get_running_loop()) < until_)                          \
            cio_sleep(0.001); /* a refusal (-ENOMEM) just tries again */                           \
    } while (0)

static void fill(uint8_t *buf, size_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)((off + i) % 251);
}

/* A connection_lost with -ENOMEM is an error the scenario met. */
static void note_lost(int *rc, const outcome_t *o)
{
    note(rc, o->lost && o->err == -ENOMEM ? -ENOMEM : 0);
}

/* ---- stream: a connected pair, writes that buffer, close --------------------------------- */

#define CHUNK  (64 * 1024)
#define CHUNKS 6

/* Write CHUNKS of the pattern on @p t; how many bytes went in (all, unless a write failed). */
static size_t write_chunks(int *rc, cio_transport_t *t)
{
    static uint8_t buf[CHUNK];
    size_t queued = 0;
    for (int i = 0; i < CHUNKS; i++) {
        fill(buf, queued, CHUNK);
        int e = cio_transport_write(t, buf, CHUNK);
        if (e == -EPIPE)
            break; /* closed by an earlier failure, which was noted */
        note(rc, e);
        if (e < 0)
            break; /* a refused write would leave a gap: nothing after it */
        queued += CHUNK;
    }
    return queued;
}

static int stream_main(void *arg, void **result)
{
    int rc = 0, sv[2];
    cio_loop_t *loop = cio_get_running_loop();
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int small = 16 * 1024;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    cio_future_t *f[2];
    for (int i = 0; i < 2; i++) {
        f[i] = cio_loop_connect_accepted_socket(loop, peer_factory, NULL, sv[i], NULL);
        if (!f[i])
            close(sv[i]); /* not taken */
    }
    cio_transport_t *t[2];
    outcome_t o[2] = {{0}};
    for (int i = 0; i < 2; i++) {
        t[i] = await_noted(&rc, f[i]);
        if (t[i])
            watch_peer(t[i], &o[i]);
    }
    size_t queued = t[0] ? write_chunks(&rc, t[0]) : 0;
    for (int i = 0; i < 2; i++)
        if (t[i] && (i == 0 || !t[0]))
            cio_transport_close(t[i]); /* the reader closes when it sees the end */
    RUN_UNTIL(live_protocols == 0);
    /* Unless something failed on the way, every byte arrived, in order. */
    if (t[0] && t[1] && queued == (size_t)CHUNK * CHUNKS && o[0].err == 0 && o[1].err == 0)
        ck_assert(o[1].received == queued && !o[1].bad_byte);
    note_lost(&rc, &o[0]);
    note_lost(&rc, &o[1]);
    return rc;
}

static int scenario_stream(void)
{
    return cio_run(stream_main, NULL, false, NULL);
}

START_TEST(test_alloc_stream_survives_every_failure)
{
    ck_assert_uint_gt(walk("stream", scenario_stream), 0);
}
END_TEST

/* ---- tls: a handshake over a connected pair, writes, close --------------------------------- */

static SSL_CTX *tls_server_ctx, *tls_client_ctx;

/* A server context with a throw-away self-signed P-256 certificate; a client that trusts it. */
static void tls_contexts(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ck_assert(key && x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
    tls_server_ctx = SSL_CTX_new(TLS_server_method());
    tls_client_ctx = SSL_CTX_new(TLS_client_method());
    ck_assert(tls_server_ctx && tls_client_ctx);
    ck_assert_int_eq(SSL_CTX_use_certificate(tls_server_ctx, x), 1);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey(tls_server_ctx, key), 1);
    ck_assert_int_eq(X509_STORE_add_cert(SSL_CTX_get_cert_store(tls_client_ctx), x), 1);
    SSL_CTX_set_verify(tls_client_ctx, SSL_VERIFY_PEER, NULL);
    X509_free(x);
    EVP_PKEY_free(key);
}

/* Inside a task: await @p f; an error is noted unless it is the other side's loss. */
static void *await_tls(int *rc, cio_future_t *f)
{
    void *res = NULL;
    note_null(rc, f);
    if (!f)
        return NULL;
    int r = cio_await(f, &res);
    if (!is_peer_tls_loss(r) && r != -ECONNRESET && r != -EPIPE)
        note(rc, r);
    cio_future_unref(f);
    return r == 0 ? res : NULL;
}

static int tls_main(void *arg, void **result)
{
    int rc = 0, sv[2];
    cio_loop_t *loop = cio_get_running_loop();
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cio_connection_opts_t so = {.ssl = tls_server_ctx};
    cio_connection_opts_t co = {.ssl = tls_client_ctx, .use_sock = true, .sock = sv[1]};
    /*
     * The protocols report to o[] from the start: a handshake that fails on
     * one side can end the other's connection before its awaiting task runs,
     * and a lost transport must not be touched (its protocol says so).
     */
    outcome_t o[2] = {{0}};
    peer_t tmpl[2] = {{.out = &o[0]}, {.out = &o[1]}};
    cio_future_t *f[2] = {
        cio_loop_connect_accepted_socket(loop, peer_factory, &tmpl[0], sv[0], &so),
        cio_loop_create_connection(loop, peer_factory, &tmpl[1], NULL, NULL, &co)};
    for (int i = 0; i < 2; i++)
        if (!f[i])
            close(sv[i]); /* not taken */
    cio_transport_t *t[2];
    for (int i = 0; i < 2; i++)
        t[i] = await_tls(&rc, f[i]);
    /* The client writes; the server, done reading, closes after it. */
    size_t queued = t[1] && t[0] && !o[0].lost && !o[1].lost ? write_chunks(&rc, t[1]) : 0;
    for (int i = 1; i >= 0; i--)
        if (t[i] && !o[i].lost && (i == 1 || !t[1] || o[1].lost))
            cio_transport_close(t[i]);
    RUN_UNTIL(live_protocols == 0);
    if (t[0] && t[1] && queued == (size_t)CHUNK * CHUNKS && o[0].err == 0 && o[1].err == 0)
        ck_assert(o[0].received == queued && !o[0].bad_byte);
    note_lost(&rc, &o[0]);
    note_lost(&rc, &o[1]);
    return rc;
}

static int scenario_tls(void)
{
    return cio_run(tls_main, NULL, false, NULL);
}

START_TEST(test_alloc_tls_survives_every_failure)
{
    tls_contexts();
    ck_assert_uint_gt(walk("tls", scenario_tls), 0);
    SSL_CTX_free(tls_server_ctx);
    SSL_CTX_free(tls_client_ctx);
}
END_TEST

/* ---- server: create_server, accept, a client, close ---------------------------------------- */

static int local_port(int fd)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    return ntohs(sin.sin_port);
}

/* The exception handler: what the loop reports must be running out of memory. */
static int record_exception(cio_loop_t *loop, const cio_exception_context_t *ctx, void *arg)
{
    note(arg, ctx->error);
    return 0;
}

/* An echo server (with an idle timeout armed) and a client: 4 KiB there and back. */
static int server_main(void *arg, void **result)
{
    static uint8_t msg[4096];
    int rc = 0, fd = -1, reported = 0;
    cio_loop_t *loop = cio_get_running_loop();
    cio_loop_set_exception_handler(loop, record_exception, &reported);
    peer_t echo = {.echo = true};
    cio_server_opts_t opts = {.idle_timeout = 60};
    cio_server_t *s = await_noted(
        &rc, cio_loop_create_server(loop, peer_factory, &echo, "127.0.0.1", "0", &opts));
    if (!s)
        return rc;
    ck_assert_uint_eq(cio_server_sockets(s, &fd, 1), 1);
    char port[16];
    snprintf(port, sizeof(port), "%d", local_port(fd));
    cio_transport_t *t = await_noted(
        &rc, cio_loop_create_connection(loop, peer_factory, NULL, "127.0.0.1", port, NULL));
    outcome_t o = {0};
    if (t) {
        watch_peer(t, &o);
        fill(msg, 0, sizeof(msg));
        int e = cio_transport_write(t, msg, sizeof(msg));
        /* The server may have refused the connection already (and said so). */
        note(&rc, e == -EPIPE && cio_transport_is_closing(t) && reported ? 0 : e);
        RUN_UNTIL(e < 0 || o.lost || o.received == sizeof(msg));
        /* The echo came back whole unless a failure closed a side. */
        if (e == 0 && !o.lost)
            ck_assert(o.received == sizeof(msg) && !o.bad_byte);
        if (!o.lost)
            cio_transport_close(t);
    }
    RUN_UNTIL(live_protocols == 0);
    note_lost(&rc, &o);
    note(&rc, reported);
    cio_server_close(s);
    await_noted(&rc, cio_server_wait_closed(s));
    cio_server_free(s);
    return rc;
}

static int scenario_server(void)
{
    return cio_run(server_main, NULL, false, NULL);
}

START_TEST(test_alloc_server_survives_every_failure)
{
    ck_assert_uint_gt(walk("server", scenario_server), 0);
}
END_TEST

/* ---- datagram: two endpoints, an echo ------------------------------------------------------ */

static int datagram_main(void *arg, void **result)
{
    int rc = 0;
    cio_loop_t *loop = cio_get_running_loop();
    peer_t echo = {.echo = true};
    cio_datagram_opts_t so = {.local_host = "127.0.0.1", .local_port = "0"};
    cio_transport_t *st =
        await_noted(&rc, cio_loop_create_datagram_endpoint(loop, peer_factory, &echo, &so));
    if (!st)
        return rc;
    cio_extra_info_t info;
    ck_assert_int_eq(cio_transport_get_extra_info(st, "sockname", &info), 0);
    char port[16];
    snprintf(port, sizeof(port), "%d", ntohs(((struct sockaddr_in *)&info.addr)->sin_port));
    cio_datagram_opts_t co = {.remote_host = "127.0.0.1", .remote_port = port};
    cio_transport_t *ct =
        await_noted(&rc, cio_loop_create_datagram_endpoint(loop, peer_factory, NULL, &co));
    outcome_t o = {0};
    if (ct) {
        watch_peer(ct, &o);
        size_t sent = 0;
        for (int i = 0; i < 3; i++) {
            int e = cio_transport_sendto(ct, "datagram", 8, NULL, 0);
            note(&rc, e);
            sent += e == 0 ? 8 : 0;
        }
        RUN_UNTIL(o.received >= sent);
        /* A datagram the echo could not buffer (out of memory) is the only excuse. */
        if (o.received < sent)
            note(&rc, -ENOMEM);
        cio_transport_close(ct);
    }
    cio_transport_close(st);
    RUN_UNTIL(live_protocols == 0);
    note_lost(&rc, &o);
    return rc;
}

static int scenario_datagram(void)
{
    return cio_run(datagram_main, NULL, false, NULL);
}

START_TEST(test_alloc_datagram_survives_every_failure)
{
    ck_assert_uint_gt(walk("datagram", scenario_datagram), 0);
}
END_TEST

/* ---- executor: run_in_executor on a pool of its own and the default one ------------------- */

static int doubled(void *arg, void **result)
{
    *result = (void *)(2 * (intptr_t)arg);
    return 0;
}

static int boxed(void *arg, void **result)
{
    int *v = malloc(sizeof(*v));
    if (!v)
        return -ENOMEM;
    *v = *(int *)arg;
    *result = v;
    return 0;
}

static int executor_main(void *arg, void **result)
{
    int rc = 0;
    cio_loop_t *loop = cio_get_running_loop();
    cio_executor_t *ex = cio_executor_new(2);
    note_null(&rc, ex);
    cio_future_t *f[6];
    for (int i = 0; i < 6; i++)
        f[i] = cio_loop_run_in_executor(loop, i < 4 ? ex : NULL, doubled, (void *)(intptr_t)i);
    for (int i = 0; i < 6; i++) {
        void *res = await_noted(&rc, f[i]);
        ck_assert(!res || res == (void *)(intptr_t)(2 * i));
    }
    int *in = malloc(sizeof(*in));
    ck_assert_ptr_nonnull(in);
    *in = 42;
    cio_future_t *fo = cio_loop_run_in_executor_owned(loop, ex, boxed, in, free, free);
    note_null(&rc, fo);
    int *out = NULL;
    int r = fo ? cio_await(fo, (void **)&out) : 0;
    note(&rc, r);
    ck_assert(!fo || r < 0 || *out == 42); /* the future owns it: read before it goes */
    cio_future_unref(fo);
    cio_executor_free(ex);
    return rc;
}

static int scenario_executor(void)
{
    return cio_run(executor_main, NULL, false, NULL);
}

START_TEST(test_alloc_executor_survives_every_failure)
{
    ck_assert_uint_gt(walk("executor", scenario_executor), 0);
}
END_TEST

/* ---- config: a file with listeners, a text with errors ----------------------------------------
 */

static char config_path[64];

/* 40 listeners: the list and the name and address indexes grow. */
static void write_config(void)
{
    strcpy(config_path, "/tmp/test_alloc_XXXXXX");
    int fd = mkstemp(config_path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "[global]\nworkers = 2\nadmin = 127.0.0.1:9100\n");
    for (int i = 0; i < 40; i++)
        fprintf(f, "[listener l%d]\nservice = echo\nprotocol = tcp\naddress = 127.0.0.1:%d\n", i,
                7000 + i);
    fprintf(f, "[listener u]\nservice = echo\nprotocol = unix\naddress = /tmp/x.sock\n");
    ck_assert_int_eq(fclose(f), 0);
}

static const char bad_text[] = "[global]\n"
                               "workers = many\n"
                               "[listener a]\n"
                               "service = echo\n"
                               "protocol = tcp\n"
                               "address = 127.0.0.1:7\n"
                               "[listener a]\n"
                               "colour = blue\n"
                               "[nowhere]\n";

/* A failed load or parse says why: out of memory, or (the bad text) its errors. */
static int scenario_config(void)
{
    int rc = 0;
    char *errors = NULL;
    cio_config_t *c = cio_config_load(config_path, &errors);
    if (!c) {
        ck_assert_msg(!errors || strstr(errors, strerror(ENOMEM)), "errors: %s", errors);
        note(&rc, -ENOMEM);
    } else {
        ck_assert_ptr_null(errors);
        ck_assert_uint_eq(c->nlisteners, 41);
        ck_assert_ptr_nonnull(cio_config_find_listener(c, "l39"));
    }
    cio_config_free(c);
    free(errors);
    errors = NULL;
    c = cio_config_parse(bad_text, "bad.ini", &errors);
    ck_assert_ptr_null(c);
    if (errors && strstr(errors, strerror(ENOMEM)))
        note(&rc, -ENOMEM);
    else if (!errors)
        note(&rc, -ENOMEM);
    else
        ck_assert_msg(strstr(errors, "bad.ini:2:") && strstr(errors, "bad.ini:7:") &&
                          strstr(errors, "bad.ini:8:") && strstr(errors, "bad.ini:9:"),
                      "errors: %s", errors);
    free(errors);
    return rc;
}

START_TEST(test_alloc_config_survives_every_failure)
{
    write_config();
    unsigned long runs = walk("config", scenario_config);
    unlink(config_path);
    ck_assert_uint_gt(runs, 0);
}
END_TEST

static Suite *alloc_suite(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = cio_test_case("walk");
    tcase_set_timeout(tc, 120);
    CIO_TEST(tc, test_alloc_loop_survives_every_failure);
    CIO_TEST(tc, test_alloc_timer_survives_every_failure);
    CIO_TEST(tc, test_alloc_mailbox_survives_every_failure);
    CIO_TEST(tc, test_alloc_future_survives_every_failure);
    CIO_TEST(tc, test_alloc_task_survives_every_failure);
    CIO_TEST(tc, test_alloc_stream_survives_every_failure);
    CIO_TEST(tc, test_alloc_tls_survives_every_failure);
    CIO_TEST(tc, test_alloc_server_survives_every_failure);
    CIO_TEST(tc, test_alloc_datagram_survives_every_failure);
    CIO_TEST(tc, test_alloc_executor_survives_every_failure);
    CIO_TEST(tc, test_alloc_config_survives_every_failure);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(alloc_suite)
