/*
 * tests/test_resolver.c: getaddrinfo and getnameinfo on the resolver's
 * private pool. Answers settle on the loop and belong to the future; failures
 * are CIO_EAI_* codes with getaddrinfo's message (an unknown host under the
 * .invalid TLD of RFC 6761, an unknown service, a bad address family), and
 * create_connection, create_server and create_datagram_endpoint fail with
 * them too. Slow lookups do not hold up run_in_executor jobs, and a loop
 * closed with lookups in flight orphans them: it does not wait, cancels their
 * futures, drops those not started and frees the answers of the others.
 *
 * getaddrinfo and freeaddrinfo are interposed here. A lookup of GATED_HOST
 * blocks until the test opens the gate, as behind a slow name server, then
 * answers 127.0.0.1; the lists it returned are counted as they are freed. A
 * lookup of QUEUED_HOST is counted when it starts.
 */
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "testutil.h"

#define GATED_HOST    "gated.invalid"
#define QUEUED_HOST   "queued.invalid"
#define UNKNOWN_HOST  "nonexistent.invalid" /* RFC 6761: never resolves */
#define MAX_ANSWERS   8
#define WAIT_LIMIT_MS 10000

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                              struct addrinfo **);
typedef void (*freeaddrinfo_fn)(struct addrinfo *);

static getaddrinfo_fn real_getaddrinfo;
static freeaddrinfo_fn real_freeaddrinfo;

/* What the interposed functions saw; guarded by mu. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    int waiting;      /* gated lookups blocked now */
    int queued_calls; /* lookups of QUEUED_HOST that started */
    struct addrinfo *answers[MAX_ANSWERS];
    int nanswers;
    int freed; /* answers passed to freeaddrinfo */
} gate = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

__attribute__((constructor)) static void find_real_functions(void)
{
    real_getaddrinfo = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    real_freeaddrinfo = (freeaddrinfo_fn)dlsym(RTLD_NEXT, "freeaddrinfo");
}

/* A gated lookup waits for the gate, then resolves 127.0.0.1 instead. */
static int gated_lookup(const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
    pthread_mutex_lock(&gate.mu);
    gate.waiting++;
    pthread_cond_broadcast(&gate.cv);
    while (!gate.open)
        pthread_cond_wait(&gate.cv, &gate.mu);
    gate.waiting--;
    pthread_mutex_unlock(&gate.mu);
    struct addrinfo h = hints ? *hints : (struct addrinfo){0};
    h.ai_flags |= AI_NUMERICHOST;
    int rc = real_getaddrinfo("127.0.0.1", service, &h, res);
    pthread_mutex_lock(&gate.mu);
    if (rc == 0 && gate.nanswers < MAX_ANSWERS)
        gate.answers[gate.nanswers++] = *res;
    pthread_mutex_unlock(&gate.mu);
    return rc;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    bool numeric = hints && (hints->ai_flags & AI_NUMERICHOST);
    if (node && !numeric && strcmp(node, GATED_HOST) == 0)
        return gated_lookup(service, hints, res);
    if (node && !numeric && strcmp(node, QUEUED_HOST) == 0) {
        pthread_mutex_lock(&gate.mu);
        gate.queued_calls++;
        pthread_mutex_unlock(&gate.mu);
    }
    return real_getaddrinfo(node, service, hints, res);
}

void freeaddrinfo(struct addrinfo *ai)
{
    pthread_mutex_lock(&gate.mu);
    for (int i = 0; i < gate.nanswers; i++)
        gate.freed += gate.answers[i] == ai;
    pthread_mutex_unlock(&gate.mu);
    real_freeaddrinfo(ai);
}

static void open_gate(void)
{
    pthread_mutex_lock(&gate.mu);
    gate.open = true;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

/* Wait until *@p counter reaches @p n (under gate.mu); false after WAIT_LIMIT_MS. */
static bool wait_for_count(const int *counter, int n)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += WAIT_LIMIT_MS / 1000;
    pthread_mutex_lock(&gate.mu);
    int rc = 0;
    while (*counter < n && rc == 0)
        rc = pthread_cond_timedwait(&gate.cv, &gate.mu, &deadline);
    bool reached = *counter >= n;
    pthread_mutex_unlock(&gate.mu);
    return reached;
}

/* freeaddrinfo signals nobody: poll for the count of freed answers. */
static bool wait_for_freed(int n)
{
    for (int ms = 0; ms < WAIT_LIMIT_MS; ms++) {
        pthread_mutex_lock(&gate.mu);
        bool reached = gate.freed >= n;
        pthread_mutex_unlock(&gate.mu);
        if (reached)
            return true;
        nanosleep(&(struct timespec){0, 1000000L}, NULL);
    }
    return false;
}

static int gate_count(const int *counter)
{
    pthread_mutex_lock(&gate.mu);
    int n = *counter;
    pthread_mutex_unlock(&gate.mu);
    return n;
}

/* ---- answers ------------------------------------------------------------------ */

static int resolve_localhost_fn(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    cio_future_t *f = cio_loop_getaddrinfo(loop, "localhost", "80", &hints);
    struct addrinfo *res = NULL;
    ck_assert_int_eq(cio_await(f, (void **)&res), 0);
    ck_assert_ptr_nonnull(res);
    struct sockaddr_in *sin = (struct sockaddr_in *)res->ai_addr;
    ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    ck_assert_uint_eq(ntohs(sin->sin_port), 80);
    cio_future_unref(f); /* frees the list */

    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(8080)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f = cio_loop_getnameinfo(loop, (struct sockaddr *)&a, sizeof(a),
                             NI_NUMERICHOST | NI_NUMERICSERV);
    cio_nameinfo_t *ni = NULL;
    ck_assert_int_eq(cio_await(f, (void **)&ni), 0);
    ck_assert_str_eq(ni->host, "127.0.0.1");
    ck_assert_str_eq(ni->service, "8080");
    cio_future_unref(f);
    return 0;
}

START_TEST(test_getaddrinfo_and_getnameinfo_answer_on_the_loop)
{
    ck_assert_int_eq(cio_run(resolve_localhost_fn, NULL, false, NULL), 0);
}
END_TEST

START_TEST(test_lookups_reject_bad_arguments_and_closed_loops)
{
    cio_loop_t *loop = cio_loop_new();
    struct sockaddr_in a = {.sin_family = AF_INET};
    ck_assert_ptr_null(cio_loop_getaddrinfo(loop, NULL, NULL, NULL));
    ck_assert_ptr_null(cio_loop_getaddrinfo(NULL, "localhost", "80", NULL));
    ck_assert_ptr_null(cio_loop_getnameinfo(loop, NULL, 0, 0));
    ck_assert_ptr_null(cio_loop_getnameinfo(loop, (struct sockaddr *)&a, 0, 0));
    cio_loop_close(loop);
    ck_assert_ptr_null(cio_loop_getaddrinfo(loop, "localhost", "80", NULL));
    ck_assert_ptr_null(cio_loop_getnameinfo(loop, (struct sockaddr *)&a, sizeof(a), 0));
    cio_loop_free(loop);
}
END_TEST

/* ---- failures ------------------------------------------------------------------ */

/* Run @p f to its end on @p loop; check its error is @p want, named and described. */
static void assert_lookup_error(cio_loop_t *loop, cio_future_t *f, int want)
{
    ck_assert_ptr_nonnull(f);
    int err = cio_loop_run_until_complete(loop, f, NULL);
    ck_assert_msg(err == want, "error %s (%s), expected %s", cio_err_name(err), cio_strerror(err),
                  cio_err_name(want));
    ck_assert_str_eq(cio_future_error_message(f), cio_strerror(want));
    cio_future_unref(f);
}

/*
 * The error an unknown host gets: CIO_EAI_NONAME, or CIO_EAI_AGAIN where no
 * name server answers (then said on stderr; the code is checked all the same).
 */
static int unknown_host_error(void)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int gai = real_getaddrinfo(UNKNOWN_HOST, "80", &hints, &res);
    if (gai == 0)
        real_freeaddrinfo(res);
    ck_assert_msg(gai == EAI_NONAME || gai == EAI_AGAIN, "%s: %s", UNKNOWN_HOST, gai_strerror(gai));
    if (gai == EAI_AGAIN)
        fprintf(stderr, "note: no name server answers; %s fails with EAI_AGAIN\n", UNKNOWN_HOST);
    return gai == EAI_NONAME ? CIO_EAI_NONAME : CIO_EAI_AGAIN;
}

START_TEST(test_unknown_host_fails_with_eai_noname_and_its_message)
{
    ck_assert_int_eq(CIO_EAI_NONAME, -4102);
    ck_assert_str_eq(cio_strerror(CIO_EAI_NONAME), "Name or service not known");
    ck_assert_str_eq(cio_err_name(CIO_EAI_NONAME), "CIO_EAI_NONAME");
    cio_loop_t *loop = cio_loop_new();
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    int want = unknown_host_error();
    assert_lookup_error(loop, cio_loop_getaddrinfo(loop, UNKNOWN_HOST, "80", &hints), want);
    /* Not a numeric address: no name server involved. */
    hints.ai_flags = AI_NUMERICHOST;
    assert_lookup_error(loop, cio_loop_getaddrinfo(loop, "not an address", "80", &hints),
                        CIO_EAI_NONAME);
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_unknown_service_fails_with_eai_service)
{
    cio_loop_t *loop = cio_loop_new();
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    assert_lookup_error(loop, cio_loop_getaddrinfo(loop, "127.0.0.1", "no-such-service", &hints),
                        CIO_EAI_SERVICE);
    ck_assert_str_eq(cio_strerror(CIO_EAI_SERVICE), "Servname not supported for ai_socktype");
    cio_loop_free(loop);
}
END_TEST

START_TEST(test_getnameinfo_of_a_bad_address_fails_with_eai_family)
{
    cio_loop_t *loop = cio_loop_new();
    /* An IPv6 family with an IPv4-sized address. */
    struct sockaddr_in a = {.sin_family = AF_INET6};
    assert_lookup_error(loop, cio_loop_getnameinfo(loop, (struct sockaddr *)&a, sizeof(a), 0),
                        CIO_EAI_FAMILY);
    cio_loop_free(loop);
}
END_TEST

static int factory_calls;

static cio_protocol_t *no_protocol(void *arg)
{
    factory_calls++;
    return NULL;
}

/* As assert_lookup_error(), for the task behind create_*: the error alone. */
static void assert_fails_with(cio_loop_t *loop, cio_future_t *f, int want)
{
    ck_assert_ptr_nonnull(f);
    int err = cio_loop_run_until_complete(loop, f, NULL);
    ck_assert_msg(err == want, "error %s (%s), expected %s", cio_err_name(err), cio_strerror(err),
                  cio_err_name(want));
    cio_future_unref(f);
}

START_TEST(test_connections_servers_and_endpoints_fail_with_the_lookup_error)
{
    cio_loop_t *loop = cio_loop_new();
    int unknown = unknown_host_error();
    assert_fails_with(loop,
                      cio_loop_create_connection(loop, no_protocol, NULL, UNKNOWN_HOST, "80", NULL),
                      unknown);
    assert_fails_with(
        loop,
        cio_loop_create_connection(loop, no_protocol, NULL, "127.0.0.1", "no-such-service", NULL),
        CIO_EAI_SERVICE);
    assert_fails_with(
        loop, cio_loop_create_server(loop, no_protocol, NULL, "127.0.0.1", "no-such-service", NULL),
        CIO_EAI_SERVICE);
    assert_fails_with(
        loop, cio_loop_create_server(loop, no_protocol, NULL, UNKNOWN_HOST, "0", NULL), unknown);
    cio_datagram_opts_t o = {.remote_host = UNKNOWN_HOST, .remote_port = "9"};
    assert_fails_with(loop, cio_loop_create_datagram_endpoint(loop, no_protocol, NULL, &o),
                      unknown);
    ck_assert_int_eq(factory_calls, 0);
    cio_loop_free(loop);
}
END_TEST

/* ---- the private pool and closing ---------------------------------------------- */

static int quick_job(void *arg, void **result)
{
    *result = arg;
    return 0;
}

START_TEST(test_slow_lookups_do_not_hold_up_executor_jobs)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *slow[2];
    for (int i = 0; i < 2; i++)
        slow[i] = cio_loop_getaddrinfo(loop, GATED_HOST, "80", NULL);
    ck_assert(wait_for_count(&gate.waiting, 2));
    /* Both resolver threads are blocked: a user job runs all the same. */
    cio_future_t *job = cio_loop_run_in_executor(loop, NULL, quick_job, &gate);
    void *res = NULL;
    ck_assert_int_eq(cio_loop_run_until_complete(loop, job, &res), 0);
    ck_assert_ptr_eq(res, &gate);
    /* The pool has two threads: a third lookup waits for one of them. */
    cio_future_t *third = cio_loop_getaddrinfo(loop, "127.0.0.1", "80", NULL);
    cio_loop_call_soon(loop, cio_test_stop_cb, loop, NULL);
    cio_loop_run_forever(loop);
    ck_assert(!cio_future_done(third));
    ck_assert_int_eq(gate_count(&gate.waiting), 2);
    open_gate();
    ck_assert_int_eq(cio_loop_run_until_complete(loop, third, NULL), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(cio_loop_run_until_complete(loop, slow[i], NULL), 0);
        cio_future_unref(slow[i]);
    }
    cio_future_unref(third);
    cio_future_unref(job);
    cio_loop_free(loop);
    /* The answers belonged to the futures, freed with them. */
    ck_assert_int_eq(gate_count(&gate.freed), 2);
}
END_TEST

START_TEST(test_closing_a_loop_with_a_lookup_in_flight_orphans_it)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *f = cio_loop_getaddrinfo(loop, GATED_HOST, "80", NULL);
    ck_assert(wait_for_count(&gate.waiting, 1));
    /* Close returns while the lookup is still blocked: it does not wait. */
    ck_assert_int_eq(cio_loop_close(loop), 0);
    ck_assert_int_eq(gate_count(&gate.waiting), 1);
    ck_assert(cio_future_cancelled(f));
    cio_future_unref(f);
    cio_loop_free(loop);
    /* The lookup ends later; its answer is freed, not posted (ASan: no leak). */
    open_gate();
    ck_assert(wait_for_freed(1));
    ck_assert_int_eq(gate_count(&gate.nanswers), 1);
}
END_TEST

START_TEST(test_closing_a_loop_drops_its_queued_lookups)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *f[3];
    for (int i = 0; i < 2; i++)
        f[i] = cio_loop_getaddrinfo(loop, GATED_HOST, "80", NULL);
    ck_assert(wait_for_count(&gate.waiting, 2));
    f[2] = cio_loop_getaddrinfo(loop, QUEUED_HOST, "80", NULL);
    ck_assert_int_eq(cio_loop_close(loop), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert(cio_future_cancelled(f[i]));
        cio_future_unref(f[i]);
    }
    cio_loop_free(loop);
    open_gate();
    ck_assert(wait_for_freed(2));
    /* A lookup on another loop goes through the same threads: the dropped one never ran. */
    cio_loop_t *other = cio_loop_new();
    cio_future_t *g = cio_loop_getaddrinfo(other, "localhost", "80", NULL);
    ck_assert_int_eq(cio_loop_run_until_complete(other, g, NULL), 0);
    cio_future_unref(g);
    cio_loop_free(other);
    ck_assert_int_eq(gate_count(&gate.queued_calls), 0);
}
END_TEST

START_TEST(test_closing_a_loop_with_many_lookups_in_flight_loses_nothing)
{
    cio_loop_t *loop = cio_loop_new();
    cio_future_t *f[20];
    for (int i = 0; i < 20; i++)
        ck_assert_ptr_nonnull(f[i] = cio_loop_getaddrinfo(loop, "localhost", "http", NULL));
    /* Whatever each had reached (queued, running, answered), it ends cancelled. */
    ck_assert_int_eq(cio_loop_close(loop), 0);
    for (int i = 0; i < 20; i++) {
        ck_assert(cio_future_cancelled(f[i]));
        cio_future_unref(f[i]);
    }
    cio_loop_free(loop);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("resolver");
    TCase *tc = cio_test_case("resolver");
    CIO_TEST(tc, test_getaddrinfo_and_getnameinfo_answer_on_the_loop);
    CIO_TEST(tc, test_lookups_reject_bad_arguments_and_closed_loops);
    CIO_TEST(tc, test_unknown_host_fails_with_eai_noname_and_its_message);
    CIO_TEST(tc, test_unknown_service_fails_with_eai_service);
    CIO_TEST(tc, test_getnameinfo_of_a_bad_address_fails_with_eai_family);
    CIO_TEST(tc, test_connections_servers_and_endpoints_fail_with_the_lookup_error);
    CIO_TEST(tc, test_slow_lookups_do_not_hold_up_executor_jobs);
    CIO_TEST(tc, test_closing_a_loop_with_a_lookup_in_flight_orphans_it);
    CIO_TEST(tc, test_closing_a_loop_drops_its_queued_lookups);
    CIO_TEST(tc, test_closing_a_loop_with_many_lookups_in_flight_loses_nothing);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
