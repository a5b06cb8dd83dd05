/*
 * tests/test_app.c: the framework (coreio/service.h, coreio/app.h): the
 * service registry, what cio_app_new() checks, and an app run in a thread,
 * reloaded and stopped through the API with a real client on loopback; the
 * child processes a service owns, ended by a stop or a reload; health checks,
 * drain and HAProxy's agent-check on the admin and agent listeners.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coreio.h"
#include "testutil.h"

/* ---- a service that answers "W<worker state>" to anything ---------------------- */

static atomic_int inits, teardowns;

typedef struct tag_conn {
    cio_protocol_t base;
    cio_transport_t *t;
    const char *tag;
} tag_conn_t;

static int tag_made(cio_protocol_t *p, cio_transport_t *t)
{
    ((tag_conn_t *)p)->t = t;
    return 0;
}

static int tag_data(cio_protocol_t *p, const void *data, size_t len)
{
    tag_conn_t *c = (tag_conn_t *)p;
    return cio_transport_write(c->t, c->tag, strlen(c->tag));
}

static void tag_lost(cio_protocol_t *p, int err)
{
    free(p);
}

static const cio_protocol_ops_t tag_ops = {
    .connection_made = tag_made, .data_received = tag_data, .connection_lost = tag_lost};

static cio_protocol_t *tag_factory(cio_service_ctx_t *ctx)
{
    tag_conn_t *c = calloc(1, sizeof(*c));
    c->base.ops = &tag_ops;
    c->tag = cio_service_state(ctx);
    return &c->base;
}

static int tag_init(cio_service_ctx_t *ctx, void **state)
{
    ck_assert_ptr_eq(cio_service_loop(ctx), cio_get_running_loop()); /* the worker's thread */
    ck_assert_ptr_null(cio_service_listener(ctx));
    atomic_fetch_add(&inits, 1);
    *state = cio_service_arg(ctx);
    return 0;
}

static void tag_teardown(cio_service_ctx_t *ctx, void *state)
{
    atomic_fetch_add(&teardowns, 1);
}

static void register_tag(void)
{
    static const cio_service_t tag = {.name = "tag",
                                      .kinds = CIO_SERVICE_STREAM,
                                      .factory = tag_factory,
                                      .start = tag_init,
                                      .stop = tag_teardown,
                                      .arg = (void *)"tagged"};
    int rc = cio_service_register(&tag);
    ck_assert(rc == 0 || rc == -EEXIST);
}

/* ---- the registry ---------------------------------------------------------------------- */

START_TEST(test_builtin_services_are_registered_and_names_are_checked)
{
    const char *builtin[] = {"echo", "discard", "http-hello", "stats"};
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_nonnull(cio_service_find(builtin[i]));
    ck_assert_uint_eq(cio_service_find("echo")->kinds, CIO_SERVICE_STREAM | CIO_SERVICE_DGRAM);
    ck_assert_uint_eq(cio_service_find("http-hello")->kinds, CIO_SERVICE_STREAM);
    ck_assert_ptr_null(cio_service_find("nope"));
    ck_assert_ptr_null(cio_service_find(NULL));

    cio_service_t s = {.name = "mine", .kinds = CIO_SERVICE_STREAM, .factory = tag_factory};
    ck_assert_int_eq(cio_service_register(&s), 0);
    ck_assert_ptr_eq(cio_service_find("mine")->factory, tag_factory);
    ck_assert_int_eq(cio_service_register(&s), -EEXIST);
    s.name = "echo";
    ck_assert_int_eq(cio_service_register(&s), -EEXIST);
    s.name = "bad name";
    ck_assert_int_eq(cio_service_register(&s), -EINVAL);
    s.name = "";
    ck_assert_int_eq(cio_service_register(&s), -EINVAL);
    s = (cio_service_t){.name = "nofactory", .kinds = CIO_SERVICE_STREAM};
    ck_assert_int_eq(cio_service_register(&s), -EINVAL);
    s = (cio_service_t){.name = "nokinds", .factory = tag_factory};
    ck_assert_int_eq(cio_service_register(&s), -EINVAL);
    s.kinds = 8;
    ck_assert_int_eq(cio_service_register(&s), -EINVAL);
    ck_assert_int_eq(cio_service_register(NULL), -EINVAL);
}
END_TEST

START_TEST(test_app_new_names_the_line_of_an_unknown_or_unfit_service)
{
    char *errors = NULL;
    cio_config_t *c = cio_config_parse("[global]\nadmin = off\n\n"
                                       "[listener a]\nservice = nope\naddress = 127.0.0.1:1\n\n"
                                       "[listener b]\nservice = http-hello\nprotocol = udp\n"
                                       "address = 127.0.0.1:2\n",
                                       "apps.ini", &errors);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_null(cio_app_new(c, NULL, &errors));
    ck_assert_ptr_nonnull(errors);
    ck_assert_msg(strstr(errors, "apps.ini:4: listener a: no service called \"nope\"") != NULL,
                  "%s", errors);
    ck_assert_msg(strstr(errors, "apps.ini:8: listener b: service http-hello does not speak udp"),
                  "%s", errors);
    free(errors);
    ck_assert_ptr_null(cio_app_new(NULL, NULL, NULL));
}
END_TEST

START_TEST(test_app_new_lists_the_first_service_errors_then_their_count)
{
    size_t cap = 100000;
    char *ini = malloc(cap), *p = ini;
    p += sprintf(p, "[global]\nadmin = off\n");
    for (int i = 0; i < 1000; i++)
        p += sprintf(p, "[listener l%d]\nservice = nope\naddress = 127.0.0.1:%d\n", i, 20000 + i);
    char *errors = NULL;
    cio_config_t *c = cio_config_parse(ini, "many.ini", &errors);
    ck_assert_msg(c != NULL, "%s", errors ? errors : "");
    ck_assert_ptr_null(cio_app_new(c, NULL, &errors));
    int lines = 0;
    for (const char *q = errors; (q = strchr(q, '\n')); q++)
        lines++;
    ck_assert_int_eq(lines, CIO_CONFIG_ERRORS_MAX + 1);
    ck_assert_msg(strstr(errors, "many.ini:3: listener l0: no service called \"nope\"\n"), "%s",
                  errors);
    ck_assert_msg(strstr(errors, "many.ini: 980 more errors"), "%s", errors);
    free(errors);
    free(ini);
}
END_TEST

/* ---- running, reloading, stopping ---------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

/* Connect to @p port, send @p msg, return what comes back ("" if nothing). */
static char *ask(int port, const char *msg, char *buf, size_t len)
{
    buf[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 3};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        send(fd, msg, strlen(msg), 0) == (ssize_t)strlen(msg)) {
        ssize_t n = recv(fd, buf, len - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
    }
    close(fd);
    return buf;
}

/* Poll until @p port answers @p want (up to 5 s). */
static bool answers(int port, const char *want)
{
    char buf[64];
    for (int i = 0; i < 100; i++) {
        if (strcmp(ask(port, "?", buf, sizeof(buf)), want) == 0)
            return true;
        usleep(50000);
    }
    return false;
}

typedef struct runner {
    cio_app_t *app;
    int rc;
} runner_t;

static void *run_app(void *arg)
{
    runner_t *r = arg;
    r->rc = cio_app_run(r->app);
    return NULL;
}

static void write_config(const char *path, int port_a, int port_b)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "[global]\nworkers = 2\nadmin = off\ndrain_timeout = 1s\n\n"
            "[listener a]\nservice = tag\naddress = 127.0.0.1:%d\n",
            port_a);
    if (port_b)
        fprintf(f, "\n[listener b]\nservice = http-hello\naddress = 127.0.0.1:%d\n", port_b);
    fclose(f);
}

START_TEST(test_an_app_serves_reloads_and_stops_through_the_api)
{
    register_tag();
    atomic_store(&inits, 0);
    atomic_store(&teardowns, 0);
    char dir[] = "/tmp/cio-app-XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/app.ini", dir);
    int pa = free_port(), pb = free_port();
    write_config(path, pa, 0);
    char *errors = NULL;
    cio_config_t *c = cio_config_load(path, &errors);
    ck_assert_msg(c != NULL, "%s", errors ? errors : "");
    cio_app_opts_t o = {.config_path = path, .name = "test"};
    runner_t r = {.app = cio_app_new(c, &o, &errors)};
    ck_assert_ptr_nonnull(r.app);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, run_app, &r), 0);
    ck_assert(answers(pa, "tagged"));
    ck_assert_int_eq(atomic_load(&inits), 2); /* once per worker */

    /* Reload: b opens, a keeps serving. */
    write_config(path, pa, pb);
    cio_app_reload(r.app);
    char buf[256];
    const char *get = "GET / HTTP/1.0\r\n\r\n";
    for (int i = 0; i < 100 && strncmp(ask(pb, get, buf, sizeof(buf)), "HTTP/1.1 ", 9) != 0; i++)
        usleep(50000);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s", buf);
    ck_assert(answers(pa, "tagged"));
    ck_assert_int_eq(atomic_load(&inits), 2); /* a kept its state */

    /* A broken file changes nothing. */
    FILE *f = fopen(path, "a");
    fputs("bogus = 1\n", f);
    fclose(f);
    cio_app_reload(r.app);
    usleep(200000);
    ck_assert(answers(pa, "tagged"));

    /* Stopping: an idle HTTP keep-alive connection is closed at once, well
     * before the 1 s drain_timeout. */
    int ka = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sb = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)pb),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 3};
    setsockopt(ka, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ck_assert_int_eq(connect(ka, (struct sockaddr *)&sb, sizeof(sb)), 0);
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(send(ka, req, strlen(req), 0), (ssize_t)strlen(req));
    ck_assert_int_gt(recv(ka, buf, sizeof(buf), 0), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cio_app_stop(r.app);
    pthread_join(th, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    ck_assert_msg(took < 0.9, "stopping took %.3f s", took);
    ck_assert_int_eq(recv(ka, buf, sizeof(buf), 0), 0);
    close(ka);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(atomic_load(&teardowns), 2);
    ck_assert_str_eq(ask(pa, "?", buf, sizeof(buf)), ""); /* closed */
    cio_app_free(r.app);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* Connect to @p port; the socket gives up reading after @p seconds. */
static int dial(int port, int seconds)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = seconds};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s",
                  strerror(errno));
    return fd;
}

/* Connect to @p port and check one round trip of the tag service; the socket stays open. */
static int hold(int port)
{
    int fd = dial(port, 3);
    char buf[16] = "";
    ck_assert_int_eq(send(fd, "?", 1, 0), 1);
    ck_assert_int_eq(recv(fd, buf, sizeof(buf) - 1, 0), 6);
    ck_assert_str_eq(buf, "tagged");
    return fd;
}

/* Start an app on @p ini (written to a temporary file) in a thread. */
static cio_app_t *start_app(const char *ini, char *path, pthread_t *th, runner_t *r)
{
    char dir[] = "/tmp/cio-app-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, 64, "%s/app.ini", dir);
    FILE *f = fopen(path, "w");
    fputs(ini, f);
    fclose(f);
    char *errors = NULL;
    cio_config_t *c = cio_config_load(path, &errors);
    ck_assert_msg(c != NULL, "%s", errors ? errors : "");
    static cio_app_opts_t o;
    o = (cio_app_opts_t){.config_path = path, .name = "test"};
    r->app = cio_app_new(c, &o, &errors);
    ck_assert_ptr_nonnull(r->app);
    ck_assert_int_eq(pthread_create(th, NULL, run_app, r), 0);
    return r->app;
}

/* Join @p th, failing if it takes more than @p seconds (a hang, not a slow stop). */
static void join_within(pthread_t th, int seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    ck_assert_msg(pthread_timedjoin_np(th, NULL, &ts) == 0, "the app did not stop");
}

/* Stop the app started by start_app(): it must stop cleanly, and in time. */
static void stop_app(pthread_t th, runner_t *r, const char *path)
{
    cio_app_stop(r->app);
    join_within(th, 10);
    ck_assert_int_eq(r->rc, 0);
    cio_app_free(r->app);
    unlink(path);
}

START_TEST(test_stop_aborts_connections_held_on_every_worker_at_drain_timeout)
{
    register_tag();
    int port = free_port();
    char ini[512], path[64];
    snprintf(ini, sizeof(ini),
             "[global]\nworkers = 2\nadmin = off\ndrain_timeout = 300ms\n\n"
             "[listener a]\nservice = tag\naddress = 127.0.0.1:%d\nbalance = handoff\n"
             "idle_timeout = 0\n",
             port);
    pthread_t th;
    runner_t r = {0};
    start_app(ini, path, &th, &r);
    ck_assert(answers(port, "tagged"));
    /* Hand-off gives each new connection to the least-loaded worker: one each. */
    int fds[4];
    for (int i = 0; i < 4; i++)
        fds[i] = hold(port);
    cio_app_stop(r.app);
    join_within(th, 10);
    ck_assert_int_eq(r.rc, 0);
    char buf[8];
    for (int i = 0; i < 4; i++) {
        ck_assert_int_le(recv(fds[i], buf, sizeof(buf), 0), 0); /* EOF or reset */
        close(fds[i]);
    }
    cio_app_free(r.app);
    unlink(path);
}
END_TEST

/* Rewrite @p path with @p ini and ask @p app to reload. */
static void reload_with(cio_app_t *app, const char *path, const char *ini)
{
    FILE *f = fopen(path, "w");
    fputs(ini, f);
    fclose(f);
    cio_app_reload(app);
}

/* Is a fresh idle connection to @p port closed by the server within @p ms? */
static bool closed_when_idle(int port, int ms)
{
    int fd = hold(port);
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[8];
    bool closed = recv(fd, buf, sizeof(buf), 0) == 0;
    close(fd);
    return closed;
}

START_TEST(test_a_reload_of_a_non_socket_setting_keeps_the_connections)
{
    register_tag();
    int port = free_port();
    const char *fmt = "[global]\nworkers = 2\nadmin = off\ndrain_timeout = 200ms\n\n"
                      "[listener a]\nservice = tag\naddress = 127.0.0.1:%d\nbalance = %s\n"
                      "idle_timeout = %s\n";
    const char *balance[] = {"handoff", "reuseport"};
    for (int b = 0; b < 2; b++) {
        char ini[512], path[64];
        snprintf(ini, sizeof(ini), fmt, port, balance[b], "60s");
        pthread_t th;
        runner_t r = {0};
        start_app(ini, path, &th, &r);
        ck_assert(answers(port, "tagged"));
        int fds[4];
        for (int i = 0; i < 4; i++)
            fds[i] = hold(port);
        /* Only the idle timeout changes: new connections get the new one, the
         * listener keeps its sockets and its connections. */
        snprintf(ini, sizeof(ini), fmt, port, balance[b], "100ms");
        reload_with(r.app, path, ini);
        bool applied = false;
        for (int i = 0; i < 20 && !applied; i++)
            applied = closed_when_idle(port, 500);
        ck_assert_msg(applied, "the reload did not take effect (%s)", balance[b]);
        usleep(300000); /* past drain_timeout: a drained connection would be gone */
        for (int i = 0; i < 4; i++) {
            char buf[16] = "";
            ck_assert_int_eq(send(fds[i], "?", 1, 0), 1);
            ck_assert_msg(recv(fds[i], buf, sizeof(buf) - 1, 0) == 6,
                          "connection %d was closed by the reload (%s)", i, balance[b]);
            close(fds[i]);
        }
        stop_app(th, &r, path);
    }
}
END_TEST

START_TEST(test_a_reload_moves_a_listener_to_another_service_or_balance_on_its_sockets)
{
    register_tag();
    int port = free_port();
    const char *fmt = "[global]\nworkers = 2\nadmin = off\ndrain_timeout = 200ms\n\n"
                      "[listener a]\nservice = %s\naddress = 127.0.0.1:%d\nbalance = %s\n";
    /* Each row: the service and balance the listener moves to, and its first answer. */
    const struct {
        const char *service, *balance, *answer;
    } steps[] = {{"tag", "handoff", "tagged"},  {"echo", "handoff", "?"},
                 {"tag", "handoff", "tagged"},  {"tag", "reuseport", "tagged"},
                 {"echo", "reuseport", "?"},    {"echo", "handoff", "?"},
                 {"tag", "reuseport", "tagged"}};
    char ini[512], path[64];
    snprintf(ini, sizeof(ini), fmt, steps[0].service, port, steps[0].balance);
    pthread_t th;
    runner_t r = {0};
    start_app(ini, path, &th, &r);
    ck_assert(answers(port, "tagged"));
    for (size_t i = 1; i < sizeof(steps) / sizeof(steps[0]); i++) {
        snprintf(ini, sizeof(ini), fmt, steps[i].service, port, steps[i].balance);
        reload_with(r.app, path, ini);
        ck_assert_msg(answers(port, steps[i].answer), "step %zu: no %s on %s", i, steps[i].service,
                      steps[i].balance);
    }
    stop_app(th, &r, path);
}
END_TEST

/* Did the server close @p fd (EOF or reset), rather than the read time out? */
static bool closed_by_server(int fd)
{
    char c;
    errno = 0;
    ssize_t n = recv(fd, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* Send @p len bytes of @p req to the admin port and return the status line's code. */
static int admin_status(int port, const char *req, size_t len)
{
    int fd = dial(port, 3);
    ck_assert_int_eq(send(fd, req, len, 0), (ssize_t)len);
    char buf[64] = "";
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    int code = 0;
    return n > 12 && sscanf(buf, "HTTP/1.1 %d", &code) == 1 ? code : -1;
}

START_TEST(test_the_admin_port_survives_nul_bytes_and_slow_clients)
{
    int port = free_port(), admin = free_port();
    char ini[512], path[64];
    snprintf(ini, sizeof(ini),
             "[global]\nworkers = 1\nadmin = 127.0.0.1:%d\n\n"
             "[listener a]\nservice = echo\naddress = 127.0.0.1:%d\n",
             admin, port);
    pthread_t th;
    runner_t r = {0};
    start_app(ini, path, &th, &r);
    ck_assert(answers(port, "?")); /* the admin listener opens before the listeners */
    const char *get = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(admin_status(admin, get, strlen(get)), 200);
    /* A NUL byte in the head: refused, not ignored. */
    const char nul[] = "GET /metrics HTTP/1.1\r\nHost: \0x\r\n\r\n";
    ck_assert_int_eq(admin_status(admin, nul, sizeof(nul) - 1), 400);
    /* 100 clients that never finish their request: a fresh one is still answered,
     * the oldest waiting ones are closed to make room. */
    int slow[100];
    for (int i = 0; i < 100; i++) {
        slow[i] = dial(admin, 8);
        ck_assert_int_eq(send(slow[i], "GET", 3, 0), 3);
    }
    ck_assert_int_eq(admin_status(admin, get, strlen(get)), 200);
    ck_assert(closed_by_server(slow[0])); /* the oldest */
    /* The newest is closed by the request deadline, before its 8 s read timeout. */
    ck_assert(closed_by_server(slow[99]));
    for (int i = 0; i < 100; i++)
        close(slow[i]);
    stop_app(th, &r, path);
}
END_TEST

/* framework/app.c, for tests: drains the app keeps (running or not yet released). */
size_t cio__app_drains(cio_app_t *app);

/* Reloads that drain a listener each keep no finished drain behind (white-box). */
START_TEST(test_finished_drains_are_released_across_reloads)
{
    register_tag();
    int pa = free_port(), pb = free_port();
    char ini[512], path[64];
    const char *fmt = "[global]\nworkers = 2\nadmin = off\ndrain_timeout = 100ms\n\n"
                      "[listener a]\nservice = tag\naddress = 127.0.0.1:%d\n";
    snprintf(ini, sizeof(ini), fmt, pa);
    pthread_t th;
    runner_t r = {0};
    start_app(ini, path, &th, &r);
    ck_assert(answers(pa, "tagged"));
    char with_b[640];
    snprintf(with_b, sizeof(with_b), "%s\n[listener b]\nservice = tag\naddress = 127.0.0.1:%d\n",
             ini, pb);
    for (int i = 0; i < 6; i++) {
        reload_with(r.app, path, with_b);
        ck_assert(answers(pb, "tagged"));
        reload_with(r.app, path, ini); /* b drains */
        char buf[16];
        for (int k = 0; k < 100 && ask(pb, "?", buf, sizeof(buf))[0]; k++)
            usleep(20000);
    }
    usleep(500000); /* every drain has finished */
    reload_with(r.app, path, with_b);
    ck_assert(answers(pb, "tagged"));
    reload_with(r.app, path, ini);
    for (int k = 0; k < 100 && cio__app_drains(r.app) > 1; k++)
        usleep(20000);
    ck_assert_uint_le(cio__app_drains(r.app), 1); /* at most the one just started */
    stop_app(th, &r, path);
}
END_TEST

START_TEST(test_an_address_in_use_fails_the_start)
{
    int busy = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(busy, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(busy, 1), 0);
    getsockname(busy, (struct sockaddr *)&a, &len);
    char ini[256];
    snprintf(ini, sizeof(ini),
             "[global]\nworkers = 1\nadmin = off\n[listener x]\nservice = echo\n"
             "address = 127.0.0.1:%d\n",
             ntohs(a.sin_port));
    cio_app_t *app = cio_app_new(cio_config_parse(ini, "x.ini", NULL), NULL, NULL);
    ck_assert_ptr_nonnull(app);
    ck_assert_int_eq(cio_app_run(app), -EADDRINUSE);
    cio_app_free(app);
    close(busy);
}
END_TEST

/* ---- a service's life: context, state, keys, reconfigure, restart, tasks, calls ----------------
 * As docs/SERVICES.md (sections 2-7) and docs/ARCHITECTURE.md (section 5) describe it. */

static atomic_int life_starts, life_stops, life_lstarts, life_reconf, tasks_cancelled, tasks_freed,
    tasks_left_at_stop, calls_ran, calls_freed, call_sent, worker1_stopping;

/* One worker's state: how its task ended. */
typedef struct life_state {
    bool task_cancelled, task_arg_freed;
} life_state_t;

static void life_lost(cio_protocol_t *p, int err)
{
    free((char *)((tag_conn_t *)p)->tag);
    free(p);
}

static const cio_protocol_ops_t life_ops = {
    .connection_made = tag_made, .data_received = tag_data, .connection_lost = life_lost};

/* Each connection gets "GREETING WORKER/NWORKERS LISTENER". */
static cio_protocol_t *life_factory(cio_service_ctx_t *ctx)
{
    tag_conn_t *c = calloc(1, sizeof(*c));
    char *text = malloc(128);
    snprintf(text, 128, "%s %zu/%zu %s", cio_service_string(ctx, "greeting"),
             cio_service_worker(ctx), cio_service_nworkers(ctx), cio_service_listener(ctx)->name);
    c->base.ops = &life_ops;
    c->tag = text;
    return &c->base;
}

static int life_task(void *arg, void **result)
{
    life_state_t *s = arg;
    int rc = cio_sleep(3600);
    s->task_cancelled = rc == -ECANCELED;
    atomic_fetch_add(&tasks_cancelled, rc == -ECANCELED);
    return rc;
}

static void life_task_free(void *arg)
{
    ((life_state_t *)arg)->task_arg_freed = true;
    atomic_fetch_add(&tasks_freed, 1);
}

static int life_start(cio_service_ctx_t *ctx, void **state)
{
    ck_assert_ptr_null(cio_service_listener(ctx));
    ck_assert_ptr_eq(cio_service_loop(ctx), cio_get_running_loop());
    ck_assert_ptr_eq(cio_workers_loop(cio_service_workers(ctx), cio_service_worker(ctx)),
                     cio_get_running_loop());
    atomic_fetch_add(&life_starts, 1);
    life_state_t *s = calloc(1, sizeof(*s));
    cio_task_t *t = cio_service_spawn(ctx, life_task, s, life_task_free);
    ck_assert_ptr_nonnull(t);
    cio_task_unref(t);
    *state = s;
    return 0;
}

static int life_listener_start(cio_service_ctx_t *ctx, void **state)
{
    ck_assert_ptr_nonnull(cio_service_listener(ctx));
    ck_assert_ptr_nonnull(cio_service_state(ctx)); /* the service started first */
    atomic_fetch_add(&life_lstarts, 1);
    return 0;
}

static int life_reconfigure(cio_service_ctx_t *ctx, void *state)
{
    atomic_fetch_add(&life_reconf, 1);
    return strcmp(cio_service_string(ctx, "greeting"), "refuse") == 0 ? -EINVAL : 0;
}

static int never_runs(cio_service_ctx_t *ctx, void *arg, void **result)
{
    atomic_fetch_add(&calls_ran, 1);
    return 0;
}

static void call_arg_free(void *arg)
{
    atomic_fetch_add(&calls_freed, 1);
    free(arg);
}

/*
 * Stopping: worker 0 calls worker 1 while worker 1's service is stopping (the
 * two stop hooks wait for each other), so the call must fail without running
 * and still free its argument. Each worker's task has ended before its stop.
 */
static void life_stop(cio_service_ctx_t *ctx, void *state)
{
    life_state_t *s = state;
    atomic_fetch_add(&tasks_left_at_stop, !s->task_cancelled || !s->task_arg_freed);
    free(s);
    if (cio_service_worker(ctx) == 0) {
        for (int i = 0; i < 500 && !atomic_load(&worker1_stopping); i++)
            usleep(10000);
        cio_future_t *f = cio_service_submit_to(ctx, 1, never_runs, malloc(8), call_arg_free, NULL);
        atomic_store(&call_sent, f != NULL);
        cio_future_unref(f);
    } else {
        atomic_store(&worker1_stopping, 1);
        for (int i = 0; i < 500 && !atomic_load(&call_sent); i++)
            usleep(10000);
    }
    atomic_fetch_add(&life_stops, 1);
}

static void register_life(void)
{
    static const cio_config_key_t keys[] = {
        {"greeting", CIO_CONFIG_STRING, "hello", 0, 0, "what connections are told first"},
        {"limit", CIO_CONFIG_SIZE, NULL, 1, 1 << 20, "a required key"},
    };
    static const cio_service_t life = {.name = "life",
                                       .kinds = CIO_SERVICE_STREAM,
                                       .keys = keys,
                                       .nkeys = 2,
                                       .factory = life_factory,
                                       .start = life_start,
                                       .stop = life_stop,
                                       .listener_start = life_listener_start,
                                       .reconfigure = life_reconfigure};
    int rc = cio_service_register(&life);
    ck_assert(rc == 0 || rc == -EEXIST);
}

static const char *life_ini(char *buf, size_t size, int p1, int p2, const char *greeting)
{
    snprintf(buf, size,
             "[global]\nworkers = 2\nadmin = off\ndrain_timeout = 1s\n\n"
             "[service life]\nlimit = 1K\ngreeting = %s\n\n"
             "[listener one]\nservice = life\naddress = 127.0.0.1:%d\n\n"
             "[listener two]\nservice = life\naddress = 127.0.0.1:%d\n",
             greeting, p1, p2);
    return buf;
}

/* Whether @p port answers "WANT n/2 LISTENER" for some n (up to 5 s). */
static bool greets(int port, const char *want, const char *listener)
{
    char buf[128], w0[128], w1[128];
    snprintf(w0, sizeof(w0), "%s 0/2 %s", want, listener);
    snprintf(w1, sizeof(w1), "%s 1/2 %s", want, listener);
    for (int i = 0; i < 100; i++) {
        ask(port, "?", buf, sizeof(buf));
        if (strcmp(buf, w0) == 0 || strcmp(buf, w1) == 0)
            return true;
        usleep(50000);
    }
    return false;
}

START_TEST(test_a_service_lives_once_per_worker_across_listeners_and_reloads)
{
    register_life();
    atomic_store(&life_starts, 0);
    atomic_store(&life_stops, 0);
    atomic_store(&life_lstarts, 0);
    atomic_store(&life_reconf, 0);
    atomic_store(&tasks_cancelled, 0);
    atomic_store(&tasks_freed, 0);
    atomic_store(&tasks_left_at_stop, 0);
    atomic_store(&calls_ran, 0);
    atomic_store(&calls_freed, 0);
    atomic_store(&call_sent, 0);
    atomic_store(&worker1_stopping, 0);
    char ini[1024], path[64];
    int p1 = free_port(), p2 = free_port();
    pthread_t th;
    runner_t r;
    start_app(life_ini(ini, sizeof(ini), p1, p2, "hello"), path, &th, &r);
    ck_assert(greets(p1, "hello", "one"));
    ck_assert(greets(p2, "hello", "two"));
    ck_assert_int_eq(atomic_load(&life_starts), 2);  /* once per worker, not per listener */
    ck_assert_int_eq(atomic_load(&life_lstarts), 4); /* per listener per worker */

    /* New keys: reconfigure on each worker; state, tasks and listeners stay. */
    reload_with(r.app, path, life_ini(ini, sizeof(ini), p1, p2, "bonjour"));
    ck_assert(greets(p1, "bonjour", "one"));
    ck_assert_int_eq(atomic_load(&life_reconf), 2);
    ck_assert_int_eq(atomic_load(&life_starts), 2);
    ck_assert_int_eq(atomic_load(&life_lstarts), 4);

    /* A reconfigure that fails restarts the service: a new instance takes the sockets
     * over, the old one drains, its tasks are cancelled, then it stops. */
    reload_with(r.app, path, life_ini(ini, sizeof(ini), p1, p2, "refuse"));
    ck_assert(greets(p2, "refuse", "two"));
    for (int i = 0; i < 100 && atomic_load(&life_stops) < 2; i++)
        usleep(50000);
    ck_assert_int_eq(atomic_load(&life_starts), 4);
    ck_assert_int_eq(atomic_load(&life_stops), 2);
    ck_assert_int_eq(atomic_load(&tasks_cancelled), 2);
    ck_assert_int_eq(atomic_load(&tasks_freed), 2);
    ck_assert_int_eq(atomic_load(&call_sent), 1);
    atomic_store(&call_sent, 0);
    atomic_store(&worker1_stopping, 0);

    /* A stop with tasks pending: each is cancelled and awaited before stop; the
     * cross-shard call to a stopping worker never runs and frees its argument. */
    stop_app(th, &r, path);
    ck_assert_int_eq(atomic_load(&life_stops), 4);
    ck_assert_int_eq(atomic_load(&tasks_cancelled), 4);
    ck_assert_int_eq(atomic_load(&tasks_freed), 4);
    ck_assert_int_eq(atomic_load(&tasks_left_at_stop), 0);
    ck_assert_int_eq(atomic_load(&call_sent), 1);
    ck_assert_int_eq(atomic_load(&calls_ran), 0);
    ck_assert_int_eq(atomic_load(&calls_freed), 2);
}
END_TEST

/* A start that fails after spawning: its task ends before the instance goes. */
static void count_and_free(void *arg)
{
    atomic_fetch_add(&tasks_freed, 1);
    free(arg);
}

static int failing_start(cio_service_ctx_t *ctx, void **state)
{
    life_state_t *s = calloc(1, sizeof(*s));
    cio_task_unref(cio_service_spawn(ctx, life_task, s, count_and_free));
    return -EIO;
}

START_TEST(test_a_service_whose_start_fails_fails_the_app_and_ends_its_tasks)
{
    static const cio_service_t failing = {.name = "failing",
                                          .kinds = CIO_SERVICE_STREAM,
                                          .factory = life_factory,
                                          .start = failing_start};
    int rc = cio_service_register(&failing);
    ck_assert(rc == 0 || rc == -EEXIST);
    atomic_store(&tasks_freed, 0);
    char ini[256], path[64];
    snprintf(ini, sizeof(ini),
             "[global]\nworkers = 2\nadmin = off\n\n"
             "[listener f]\nservice = failing\naddress = 127.0.0.1:%d\n",
             free_port());
    pthread_t th;
    runner_t r;
    start_app(ini, path, &th, &r);
    join_within(th, 10);
    ck_assert_int_eq(r.rc, -EIO);
    ck_assert_int_eq(atomic_load(&tasks_freed), 2); /* ended; under ASan: no use after free */
    cio_app_free(r.app);
    unlink(path);
}
END_TEST

START_TEST(test_service_keys_are_checked_at_their_lines)
{
    register_life();
    char *errors = NULL;
    cio_config_t *c =
        cio_config_parse_checked("[global]\nadmin = off\n\n[service life]\nlimit = 2M\n"
                                 "colour = red\n\n[service ghost]\n\n"
                                 "[listener l]\nservice = life\naddress = 127.0.0.1:1\n",
                                 "life.ini", cio_app_check, NULL, &errors);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(errors, "life.ini:5: limit: 2M is out of range (1..1.04858e+06)\n"
                             "life.ini:6: unknown key \"colour\" in [service life]\n"
                             "life.ini:8: [service ghost]: no service called \"ghost\" (built in, "
                             "or from a [module])\n");
    free(errors);
    c = cio_config_parse_checked("[listener l]\nservice = life\naddress = 127.0.0.1:1\n", "r.ini",
                                 cio_app_check, NULL, &errors);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(errors, "r.ini:1: [service life]: missing required key \"limit\"\n");
    free(errors);
}
END_TEST

/* Every record the app logs, from any thread. */
static pthread_mutex_t lines_mu = PTHREAD_MUTEX_INITIALIZER;
static char lines[16384];

static void keep_line(cio_log_level_t level, const char *message, void *arg)
{
    pthread_mutex_lock(&lines_mu);
    size_t n = strlen(lines);
    snprintf(lines + n, sizeof(lines) - n, "%s\n", message);
    pthread_mutex_unlock(&lines_mu);
}

/* Whether a line logged so far holds @p text. */
static bool logged(const char *text)
{
    pthread_mutex_lock(&lines_mu);
    bool found = strstr(lines, text) != NULL;
    pthread_mutex_unlock(&lines_mu);
    return found;
}

/* The app keeps a handler the program set, and its lines read right: IPv6 in brackets,
 * "1 worker", a replaced listener's drain told apart from the new one. */
START_TEST(test_the_app_logs_through_the_programs_handler_and_reads_right)
{
    lines[0] = '\0';
    cio_log_set_handler(keep_line, NULL, CIO_LOG_DEBUG);
    char ini[512], path[64];
    int port = free_port();
    snprintf(ini, sizeof(ini),
             "[global]\nworkers = 1\nadmin = off\n\n"
             "[listener v6]\nservice = echo\naddress = [::1]:%d\n",
             port);
    pthread_t th;
    runner_t r;
    start_app(ini, path, &th, &r);
    char want[256];
    for (int i = 0; i < 100 && !logged("ready"); i++)
        usleep(50000);
    snprintf(ini, sizeof(ini),
             "[global]\nworkers = 1\nadmin = off\n\n"
             "[listener v6]\nservice = discard\naddress = [::1]:%d\n",
             port);
    reload_with(r.app, path, ini);
    for (int i = 0; i < 100 && !logged("the replaced"); i++)
        usleep(50000);
    stop_app(th, &r, path);
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);
    pthread_mutex_lock(&lines_mu);
    ck_assert_msg(strstr(lines, "test: ready (1 worker, 1 listener)\n"), "%s", lines);
    snprintf(want, sizeof(want), "listener v6: echo on [::1]:%d\n", port);
    ck_assert_msg(strstr(lines, want), "%s", lines);
    snprintf(want, sizeof(want), "listener v6: discard on [::1]:%d (the same sockets)\n", port);
    ck_assert_msg(strstr(lines, want), "%s", lines);
    snprintf(want, sizeof(want), "listener v6: the replaced echo on [::1]:%d drained and closed\n",
             port);
    ck_assert_msg(strstr(lines, want), "%s", lines);
    ck_assert_msg(strstr(lines, "test: reloaded: 1 listener, 1 of them opened or moved\n"), "%s",
                  lines);
    pthread_mutex_unlock(&lines_mu);
}
END_TEST

/* ---- health checks, drain and HAProxy's agent-check --------------------------------------- */

/* Send @p len bytes of @p req to @p port and read the whole response (the server closes)
 * into @p buf; its status code, or -1. */
static int http_ask(int port, const char *req, size_t len, char *buf, size_t size)
{
    int fd = dial(port, 3);
    ck_assert_int_eq(send(fd, req, len, 0), (ssize_t)len);
    size_t got = 0;
    ssize_t n;
    while (got + 1 < size && (n = recv(fd, buf + got, size - 1 - got, 0)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(fd);
    int code = 0;
    return sscanf(buf, "HTTP/1.1 %d", &code) == 1 ? code : -1;
}

/* The body of the response in @p buf ("" when it has none). */
static const char *body_of(const char *buf)
{
    const char *end = strstr(buf, "\r\n\r\n");
    return end ? end + 4 : "";
}

/* GET /health on the admin @p port: the status code, the body in @p body. */
static int health(int port, char *body, size_t size)
{
    char buf[1024];
    const char *req = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    int code = http_ask(port, req, strlen(req), buf, sizeof(buf));
    snprintf(body, size, "%s", body_of(buf));
    return code;
}

/* @p method on @p path of the admin @p port, with no body: the status code. */
static int admin_call(int port, const char *method, const char *path, char *buf, size_t size)
{
    char req[256];
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", method,
             path);
    return http_ask(port, req, strlen(req), buf, size);
}

/* Ask the agent-check @p port, sending @p send first (HAProxy's agent-send) if not NULL,
 * then closing our side as HAProxy does; the line it wrote, then EOF (not a reset). */
static const char *agent_says(int port, const char *send_text, char *buf, size_t size)
{
    int fd = dial(port, 3);
    if (send_text)
        ck_assert_int_eq(send(fd, send_text, strlen(send_text), 0), (ssize_t)strlen(send_text));
    size_t got = 0;
    ssize_t n;
    while (got + 1 < size && !memchr(buf, '\n', got) &&
           (n = recv(fd, buf + got, size - 1 - got, 0)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    shutdown(fd, SHUT_WR);
    char more;
    ck_assert_msg(recv(fd, &more, 1, 0) == 0, "no clean end after \"%s\": %s", buf,
                  strerror(errno));
    close(fd);
    return buf;
}

/* Whether @p line is "up ready N%\n" with N a weight, 10..100. */
static bool up_ready(const char *line)
{
    unsigned n = 0;
    char tail[4] = "";
    return sscanf(line, "up ready %u%3s", &n, tail) == 2 && strcmp(tail, "%") == 0 && n >= 10 &&
           n <= 100 && line[strlen(line) - 1] == '\n';
}

/* An echo connection @p fd still echoes. */
static void still_echoes(int fd)
{
    char buf[8] = "";
    ck_assert_int_eq(send(fd, "ping", 4, 0), 4);
    ck_assert_int_eq(recv(fd, buf, sizeof(buf) - 1, 0), 4);
    ck_assert_str_eq(buf, "ping");
}

enum { ADMIN, AGENT, ECHO, STATS, NPORTS };

/* The app of these tests: the admin, the agent, an echo and a stats listener, at @p ports. */
static void start_balanced_app(int ports[NPORTS], char *path, pthread_t *th, runner_t *r)
{
    char ini[512];
    for (int i = 0; i < NPORTS; i++)
        ports[i] = free_port();
    snprintf(ini, sizeof(ini),
             "[global]\nworkers = 2\nadmin = 127.0.0.1:%d\nagent = 127.0.0.1:%d\n"
             "drain_timeout = 5s\n\n"
             "[listener e]\nservice = echo\naddress = 127.0.0.1:%d\nidle_timeout = 0\n"
             "[listener s]\nservice = stats\naddress = 127.0.0.1:%d\n",
             ports[ADMIN], ports[AGENT], ports[ECHO], ports[STATS]);
    start_app(ini, path, th, r);
    char buf[8];
    for (int i = 0; i < 100 && strcmp(ask(ports[AGENT], "", buf, sizeof(buf)), "") == 0; i++)
        usleep(50000); /* the agent opens last, once the listeners serve */
}

START_TEST(test_drain_fails_health_checks_while_connections_and_accepts_go_on)
{
    lines[0] = '\0';
    cio_log_set_handler(keep_line, NULL, CIO_LOG_DEBUG);
    int ports[NPORTS];
    char path[64], buf[1024], body[64];
    pthread_t th;
    runner_t r = {0};
    start_balanced_app(ports, path, &th, &r);
    int admin = ports[ADMIN], agent = ports[AGENT], echo = ports[ECHO];
    ck_assert_int_eq(health(admin, body, sizeof(body)), 200);
    ck_assert_str_eq(body, "serving\n");
    ck_assert_msg(up_ready(agent_says(agent, NULL, buf, sizeof(buf))), "agent: %s", buf);
    ck_assert(!cio_app_draining(r.app));
    int held = dial(echo, 3);
    still_echoes(held);

    ck_assert_int_eq(admin_call(admin, "POST", "/drain", buf, sizeof(buf)), 200);
    ck_assert_str_eq(body_of(buf), "draining\n");
    ck_assert(cio_app_draining(r.app));
    ck_assert_int_eq(health(admin, body, sizeof(body)), 503);
    ck_assert_str_eq(body, "draining\n");
    ck_assert_str_eq(agent_says(agent, NULL, buf, sizeof(buf)), "drain\n");
    ck_assert_str_eq(agent_says(agent, "hello agent\n", buf, sizeof(buf)), "drain\n");
    /* Nothing else changes: the connection goes on, new ones are accepted. */
    still_echoes(held);
    ck_assert_str_eq(ask(echo, "new", buf, sizeof(buf)), "new");
    ck_assert_int_eq(admin_call(admin, "POST", "/drain", buf, sizeof(buf)), 200);

    ck_assert_int_eq(admin_call(admin, "POST", "/undrain", buf, sizeof(buf)), 200);
    ck_assert_str_eq(body_of(buf), "serving\n");
    ck_assert_int_eq(health(admin, body, sizeof(body)), 200);
    ck_assert_msg(up_ready(agent_says(agent, "x", buf, sizeof(buf))), "agent: %s", buf);

    /* The API drains the same way, from any thread. */
    cio_app_drain(r.app, true);
    ck_assert_int_eq(health(admin, body, sizeof(body)), 503);
    ck_assert_str_eq(agent_says(agent, NULL, buf, sizeof(buf)), "drain\n");
    cio_app_drain(r.app, false);
    ck_assert_int_eq(health(admin, body, sizeof(body)), 200);
    still_echoes(held);
    close(held);
    stop_app(th, &r, path);
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);
    /* Each change is logged once: the second POST /drain changed nothing. */
    pthread_mutex_lock(&lines_mu);
    const char *drained = "test: draining: health checks fail from now on\n";
    const char *first = strstr(lines, drained);
    ck_assert_msg(first, "%s", lines);
    const char *second = strstr(first + strlen(drained), drained);
    ck_assert_msg(second && !strstr(second + strlen(drained), drained), "%s", lines);
    ck_assert_msg(strstr(lines, "test: serving again\n"), "%s", lines);
    pthread_mutex_unlock(&lines_mu);
}
END_TEST

/* Methods, heads, bodies and the stats service on a listener. */
START_TEST(test_admin_health_and_drain_answer_only_their_methods)
{
    int ports[NPORTS];
    char path[64], buf[1024], body[64];
    pthread_t th;
    runner_t r = {0};
    start_balanced_app(ports, path, &th, &r);
    int admin = ports[ADMIN];
    static const struct {
        const char *method, *path;
        int code;
        const char *allow;
    } calls[] = {
        {"GET", "/drain", 405, "Allow: POST\r\n"},
        {"PUT", "/drain", 405, "Allow: POST\r\n"},
        {"HEAD", "/undrain", 405, "Allow: POST\r\n"},
        {"POST", "/health", 405, "Allow: GET, HEAD\r\n"},
        {"DELETE", "/health", 405, "Allow: GET, HEAD\r\n"},
        {"POST", "/metrics", 405, "Allow: GET, HEAD\r\n"},
        {"POST", "/nope", 404, NULL},
        {"GET", "/drainage", 404, NULL},
        {"GET", "/health?full=1", 200, NULL},
    };
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        int code = admin_call(admin, calls[i].method, calls[i].path, buf, sizeof(buf));
        ck_assert_msg(code == calls[i].code, "%s %s: %d, not %d", calls[i].method, calls[i].path,
                      code, calls[i].code);
        ck_assert_msg(!calls[i].allow || strstr(buf, calls[i].allow), "%s %s:\n%s", calls[i].method,
                      calls[i].path, buf);
    }
    ck_assert(!cio_app_draining(r.app)); /* none of them drained */
    /* HEAD: the length of the body, and no body. */
    const char *head = "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(http_ask(admin, head, strlen(head), buf, sizeof(buf)), 200);
    ck_assert_msg(strstr(buf, "Content-Length: 8\r\n") && !*body_of(buf), "%s", buf);
    /* A body is read whole, even when it comes later, then ignored. */
    int fd = dial(admin, 3);
    const char *post = "POST /drain HTTP/1.1\r\nHost: x\r\ncontent-length:  5 \r\n\r\n";
    ck_assert_int_eq(send(fd, post, strlen(post), 0), (ssize_t)strlen(post));
    usleep(100000);
    ck_assert(!cio_app_draining(r.app)); /* not before the body */
    ck_assert_int_eq(send(fd, "hello", 5, 0), 5);
    ck_assert_int_gt(recv(fd, buf, sizeof(buf) - 1, 0), 12);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "%s", buf);
    close(fd);
    ck_assert(cio_app_draining(r.app));
    /* Bodies it cannot take, and lengths it cannot read, are refused; nothing changes. */
    static const struct {
        const char *req;
        int code;
    } refused[] = {
        {"POST /undrain HTTP/1.1\r\nContent-Length: 100000\r\n\r\n", 413},
        {"POST /undrain HTTP/1.1\r\nContent-Length: 8150\r\n\r\n", 413}, /* 8 KiB in all */
        {"POST /undrain HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
        {"POST /undrain HTTP/1.1\r\nContent-Length: five\r\n\r\n", 400},
        {"POST /undrain HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
        {"POST /undrain HTTP/1.1\r\nContent-Length:\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        ck_assert_int_eq(http_ask(admin, refused[i].req, strlen(refused[i].req), buf, sizeof(buf)),
                         refused[i].code);
    ck_assert(cio_app_draining(r.app));
    /* The stats service on a listener tells health, but cannot drain or undrain. */
    ck_assert_int_eq(health(ports[STATS], body, sizeof(body)), 503);
    ck_assert_str_eq(body, "draining\n");
    ck_assert_int_eq(admin_call(ports[STATS], "POST", "/undrain", buf, sizeof(buf)), 404);
    ck_assert(cio_app_draining(r.app));
    ck_assert_int_eq(admin_call(admin, "POST", "/undrain", buf, sizeof(buf)), 200);
    ck_assert_int_eq(health(ports[STATS], body, sizeof(body)), 200);
    ck_assert_int_eq(admin_call(ports[STATS], "POST", "/drain", buf, sizeof(buf)), 404);
    ck_assert(!cio_app_draining(r.app));
    stop_app(th, &r, path);
}
END_TEST

/* The TCP state of our end of @p fd. */
static int tcp_state(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
    return ti.tcpi_state;
}

/*
 * Whether the server still holds @p fd, whose FIN has come: a byte sent is
 * taken (and ignored) while it does, and answered with a reset once it has
 * closed, which ends our side (TCP_CLOSE) within a round trip on loopback.
 */
static bool held_by_server(int fd)
{
    send(fd, "?", 1, MSG_NOSIGNAL);
    for (int i = 0; i < 10 && tcp_state(fd) != TCP_CLOSE; i++)
        usleep(10000);
    return tcp_state(fd) == TCP_CLOSE_WAIT;
}

/* Whether the server lets @p fd go within @p seconds. */
static bool released_within(int fd, int seconds)
{
    for (int i = 0; i < seconds * 10 && held_by_server(fd); i++)
        ;
    return !held_by_server(fd);
}

/* Clients that never close cannot pile up; a stop says "maint" while the listeners drain. */
START_TEST(test_the_agent_caps_idle_clients_and_says_maint_while_stopping)
{
    int ports[NPORTS];
    char path[64], buf[64];
    pthread_t th;
    runner_t r = {0};
    start_balanced_app(ports, path, &th, &r);
    int idle[70];
    for (int i = 0; i < 70; i++) {
        idle[i] = dial(ports[AGENT], 3);
        ck_assert_int_gt(recv(idle[i], buf, sizeof(buf), 0), 0); /* the line, then its FIN */
    }
    ck_assert_msg(up_ready(agent_says(ports[AGENT], NULL, buf, sizeof(buf))), "agent: %s", buf);
    /* 64 are kept at most: the oldest went, the newest stays until the deadline. */
    ck_assert(!held_by_server(idle[0]));
    ck_assert(held_by_server(idle[69]));
    ck_assert(released_within(idle[69], 8));
    for (int i = 0; i < 70; i++)
        close(idle[i]);

    int held = dial(ports[ECHO], 3);
    still_echoes(held);
    cio_app_stop(r.app);
    /* The held connection keeps the listener draining (drain_timeout = 5s). */
    bool maint = false;
    for (int i = 0; i < 100 && !maint; i++) {
        maint = strcmp(agent_says(ports[AGENT], NULL, buf, sizeof(buf)), "maint\n") == 0;
        if (!maint)
            usleep(20000);
    }
    ck_assert_msg(maint, "agent: %s", buf);
    still_echoes(held);
    close(held); /* the drain ends */
    join_within(th, 10);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_str_eq(ask(ports[AGENT], "", buf, sizeof(buf)), ""); /* closed */
    cio_app_free(r.app);
    unlink(path);
}
END_TEST

/* health.c, for tests: the agent's weight for a worst loop lag, in seconds. */
unsigned cio__health_weight_of_lag(double lag);

/* 100% up to 5 ms of lag, then linearly down to 10% at 100 ms, never below. */
START_TEST(test_the_agent_weight_falls_linearly_with_the_loop_lag)
{
    static const struct {
        double lag;
        unsigned weight;
    } cases[] = {{0, 100},    {0.001, 100}, {0.005, 100}, {0.024, 82}, {0.0525, 55},
                 {0.081, 28}, {0.0995, 10}, {0.1, 10},    {7.5, 10},   {-1, 100}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(cio__health_weight_of_lag(cases[i].lag) == cases[i].weight,
                      "lag %g: %u, not %u", cases[i].lag, cio__health_weight_of_lag(cases[i].lag),
                      cases[i].weight);
    ck_assert_uint_eq(cio__health_weight_of_lag(NAN), 100);
}
END_TEST

/* ---- child processes a service owns (cio_service_subprocess_exec) --------------------------
 * Each worker of a "brood" service starts `count` children running `command` through
 * the shell, with pipes; a task of its own may start `short` children of /bin/true and
 * wait for each. docs/SERVICES.md, section 7 ("Child processes"). */

/* framework/children.c, for tests: the children on the context's worker's list. */
size_t cio__service_children(const cio_service_ctx_t *ctx);

#define BROOD_MAX 16

typedef struct brood_state brood_state_t;

typedef struct brood_child {
    cio_protocol_t base;
    brood_state_t *st;
    cio_subprocess_t *sp;
    int slot; /* in st->kids; -1 for a short-lived child */
} brood_child_t;

struct brood_state {
    cio_service_ctx_t *ctx;
    const char *name;               /* the service's */
    brood_child_t *kids[BROOD_MAX]; /* the long-lived ones, until their connection_lost */
    int made, lost, short_lost;
};

static atomic_int brood_stops, brood_stopped_early, short_done, short_left, short_bad;
static pthread_mutex_t pids_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    pid_t pid;
    char svc[16];
} brood_pids[64];
static int nbrood_pids;

static void brood_reset(void)
{
    atomic_store(&brood_stops, 0);
    atomic_store(&brood_stopped_early, 0);
    atomic_store(&short_done, 0);
    atomic_store(&short_left, 0);
    atomic_store(&short_bad, 0);
    pthread_mutex_lock(&pids_mu);
    nbrood_pids = 0;
    pthread_mutex_unlock(&pids_mu);
    pthread_mutex_lock(&lines_mu);
    lines[0] = '\0';
    pthread_mutex_unlock(&lines_mu);
    cio_log_set_handler(keep_line, NULL, CIO_LOG_DEBUG);
}

static int brood_made(cio_protocol_t *p, cio_transport_t *t)
{
    brood_child_t *k = (brood_child_t *)p;
    k->sp = cio_subprocess_from_transport(t);
    ck_assert_ptr_nonnull(k->sp);
    if (k->slot < 0)
        return 0;
    k->st->made++;
    pthread_mutex_lock(&pids_mu);
    brood_pids[nbrood_pids].pid = cio_subprocess_get_pid(k->sp);
    snprintf(brood_pids[nbrood_pids].svc, sizeof(brood_pids[0].svc), "%s", k->st->name);
    nbrood_pids++;
    pthread_mutex_unlock(&pids_mu);
    return 0;
}

/* A short-lived child must exit 0. */
static int brood_exited(cio_protocol_t *p)
{
    brood_child_t *k = (brood_child_t *)p;
    int code = -1;
    if (k->slot < 0 && (cio_subprocess_get_returncode(k->sp, &code) < 0 || code != 0))
        atomic_fetch_add(&short_bad, 1);
    return 0;
}

static void brood_lost(cio_protocol_t *p, int err)
{
    brood_child_t *k = (brood_child_t *)p;
    if (k->slot < 0) {
        k->st->short_lost++;
    } else {
        k->st->kids[k->slot] = NULL;
        k->st->lost++;
    }
    free(k);
}

static const cio_protocol_ops_t brood_ops = {
    .connection_made = brood_made, .process_exited = brood_exited, .connection_lost = brood_lost};

static cio_protocol_t *brood_factory(void *arg)
{
    brood_state_t *st = arg;
    brood_child_t *k = calloc(1, sizeof(*k));
    *k = (brood_child_t){.base.ops = &brood_ops, .st = st, .slot = -1};
    for (int i = 0; i < BROOD_MAX && k->slot < 0; i++)
        if (!st->kids[i])
            st->kids[(k->slot = i)] = k;
    ck_assert_int_ge(k->slot, 0);
    return &k->base;
}

static cio_protocol_t *short_factory(void *arg)
{
    brood_child_t *k = calloc(1, sizeof(*k));
    *k = (brood_child_t){.base.ops = &brood_ops, .st = arg, .slot = -1};
    return &k->base;
}

/* Start `short` children of /bin/true, 20 at a time, wait for every one to be done,
 * then for the worker's list of children to be empty. */
static int short_task(void *arg, void **result)
{
    brood_state_t *st = arg;
    int n = (int)cio_service_int(st->ctx, "short"), failed = 0;
    for (int batch = 0; batch < n; batch += 20) {
        cio_future_t *f[20];
        int m = n - batch < 20 ? n - batch : 20;
        for (int j = 0; j < m; j++)
            f[j] = cio_service_subprocess_exec(st->ctx, short_factory, st, "/bin/true", NULL, NULL);
        for (int j = 0; j < m; j++) {
            failed += !f[j] || cio_await(f[j], NULL) < 0;
            cio_future_unref(f[j]);
        }
        for (int i = 0; i < 2000 && st->short_lost + failed < batch + m; i++)
            cio_sleep(0.001);
    }
    atomic_fetch_add(&short_bad, failed);
    for (int i = 0; i < 2000 && cio__service_children(st->ctx) > 0; i++)
        cio_sleep(0.001);
    atomic_fetch_add(&short_left, (int)cio__service_children(st->ctx));
    atomic_fetch_add(&short_done, st->short_lost == n);
    return 0;
}

static int brood_start(cio_service_ctx_t *ctx, void **state)
{
    brood_state_t *st = calloc(1, sizeof(*st));
    st->ctx = ctx;
    st->name = cio_service_arg(ctx);
    *state = st;
    for (int i = 0; i < cio_service_int(ctx, "count"); i++) {
        cio_future_t *f = cio_service_subprocess_shell(ctx, brood_factory, st,
                                                       cio_service_string(ctx, "command"), NULL);
        ck_assert_ptr_nonnull(f);
        cio_future_unref(f);
    }
    if (cio_service_int(ctx, "short") > 0)
        cio_task_unref(cio_service_spawn(ctx, short_task, st, NULL));
    return 0;
}

/* The service's way to tell its children to stop: their stdin closes. */
static void brood_drain(cio_service_ctx_t *ctx)
{
    brood_state_t *st = cio_service_state(ctx);
    for (int i = 0; i < BROOD_MAX && cio_service_bool(ctx, "close_stdin_on_drain"); i++) {
        cio_transport_t *t =
            st->kids[i] ? cio_subprocess_get_pipe_transport(st->kids[i]->sp, 0) : NULL;
        if (t)
            cio_transport_close(t);
    }
}

/* By now every child is reaped and its protocol has had connection_lost. */
static void brood_stop(cio_service_ctx_t *ctx, void *state)
{
    brood_state_t *st = state;
    int left = st->made != st->lost || cio__service_children(ctx) != 0;
    for (int i = 0; i < BROOD_MAX; i++)
        left |= st->kids[i] != NULL;
    atomic_fetch_add(&brood_stopped_early, left);
    atomic_fetch_add(&brood_stops, 1);
    free(st);
}

static cio_protocol_t *refuse_factory(cio_service_ctx_t *ctx)
{
    return NULL;
}

static void register_brood(void)
{
    static const cio_config_key_t keys[] = {
        {"command", CIO_CONFIG_STRING, "exec sleep 1000", 0, 0, "what a long-lived child runs"},
        {"count", CIO_CONFIG_INTEGER, "2", 0, BROOD_MAX, "long-lived children per worker"},
        {"short", CIO_CONFIG_INTEGER, "0", 0, 10000, "children of /bin/true a task waits for"},
        {"close_stdin_on_drain", CIO_CONFIG_BOOLEAN, "no", 0, 0, "drain closes their stdin"},
    };
    static const char *names[] = {"brood_a", "brood_b", "brood_c"};
    static cio_service_t svc[3];
    for (int i = 0; i < 3; i++) {
        svc[i] = (cio_service_t){.name = names[i],
                                 .kinds = CIO_SERVICE_STREAM,
                                 .keys = keys,
                                 .nkeys = 4,
                                 .factory = refuse_factory,
                                 .start = brood_start,
                                 .stop = brood_stop,
                                 .drain = brood_drain,
                                 .arg = (void *)names[i]};
        int rc = cio_service_register(&svc[i]);
        ck_assert(rc == 0 || rc == -EEXIST);
    }
}

/* Whether @p pid is no child of ours any more: gone from /proc, or another's (reused). */
static bool not_our_child(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *end = strrchr(buf, ')'); /* after the command's name, which may hold spaces */
    char state = '?';
    int ppid = 0;
    ck_assert_msg(end && sscanf(end + 2, "%c %d", &state, &ppid) == 2, "%s: %s", path, buf);
    return ppid != getpid();
}

/* Whether @p pid is a child of ours still running (not a zombie). */
static bool running_child(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *end = strrchr(buf, ')');
    char state = '?';
    int ppid = 0;
    return end && sscanf(end + 2, "%c %d", &state, &ppid) == 2 && ppid == getpid() && state != 'Z';
}

/* Whether this process has no child at all, running or zombie (nothing is reaped). */
static bool no_children(void)
{
    siginfo_t si;
    return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD;
}

/* Wait (up to 5 s) until @p n long-lived children have run connection_made. */
static void wait_for_pids(int n)
{
    int have = 0;
    for (int i = 0; i < 100 && have < n; i++) {
        pthread_mutex_lock(&pids_mu);
        have = nbrood_pids;
        pthread_mutex_unlock(&pids_mu);
        if (have < n)
            usleep(50000);
    }
    ck_assert_int_eq(have, n);
}

/* Whether a line logged so far says @p what of child @p pid of @p svc. */
static bool logged_child(const char *svc, pid_t pid, const char *what)
{
    char want[256];
    snprintf(want, sizeof(want), "%s: child process %d %s", svc, (int)pid, what);
    return logged(want);
}

static const char *brood_section(char *buf, size_t size, const char *name, int port,
                                 const char *extra)
{
    snprintf(buf, size, "[service %s]\n%s\n[listener %s]\nservice = %s\naddress = 127.0.0.1:%d\n\n",
             name, extra, name, name, port);
    return buf;
}

START_TEST(test_a_stop_ends_the_services_children_then_runs_stop)
{
    register_brood();
    brood_reset();
    char ini[2048], a[256], b[256], c[256], path[64];
    snprintf(ini, sizeof(ini),
             "[global]\nworkers = 2\nadmin = off\ndrain_timeout = 300ms\n\n%s%s%s",
             brood_section(a, sizeof(a), "brood_a", free_port(), "count = 2\n"),
             brood_section(b, sizeof(b), "brood_b", free_port(),
                           "count = 1\ncommand = trap '' TERM && exec sleep 1000\n"),
             brood_section(c, sizeof(c), "brood_c", free_port(),
                           "count = 1\ncommand = exec cat\nclose_stdin_on_drain = yes\n"));
    pthread_t th;
    runner_t r;
    start_app(ini, path, &th, &r);
    wait_for_pids(8); /* 2 + 1 + 1 on each of the 2 workers */
    for (int i = 0; i < 8; i++)
        ck_assert_msg(running_child(brood_pids[i].pid), "%d", (int)brood_pids[i].pid);
    stop_app(th, &r, path);
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);
    ck_assert_int_eq(atomic_load(&brood_stops), 6);
    ck_assert_int_eq(atomic_load(&brood_stopped_early), 0);
    ck_assert(no_children()); /* none running, no zombie */
    for (int i = 0; i < 8; i++) {
        pid_t pid = brood_pids[i].pid;
        const char *svc = brood_pids[i].svc;
        ck_assert_msg(not_our_child(pid), "%s: child %d still there", svc, (int)pid);
        bool termed = logged_child(svc, pid, "still running at the end of the drain: SIGTERM");
        bool exited = logged_child(svc, pid, "exited after SIGTERM (returncode -15)");
        bool killed = logged_child(svc, pid, "still running 1 s after SIGTERM: SIGKILL");
        pthread_mutex_lock(&lines_mu);
        if (strcmp(svc, "brood_a") == 0) /* sleep: SIGTERM ends it */
            ck_assert_msg(termed && exited && !killed, "%d:\n%s", (int)pid, lines);
        else if (strcmp(svc, "brood_b") == 0) /* ignores SIGTERM */
            ck_assert_msg(termed && !exited && killed, "%d:\n%s", (int)pid, lines);
        else /* cat: exits when the drain hook closes its stdin, unsignalled */
            ck_assert_msg(!termed && !exited && !killed, "%d:\n%s", (int)pid, lines);
        pthread_mutex_unlock(&lines_mu);
    }
}
END_TEST

START_TEST(test_a_reload_that_removes_a_service_ends_its_children_only)
{
    register_brood();
    brood_reset();
    char ini[2048], a[256], b[256], path[64];
    int pa = free_port(), pb = free_port();
    const char *global = "[global]\nworkers = 2\nadmin = off\ndrain_timeout = 200ms\n\n";
    snprintf(ini, sizeof(ini), "%s%s%s", global,
             brood_section(a, sizeof(a), "brood_a", pa, "count = 2\n"),
             brood_section(b, sizeof(b), "brood_b", pb, "count = 1\n"));
    pthread_t th;
    runner_t r;
    start_app(ini, path, &th, &r);
    wait_for_pids(6);
    snprintf(ini, sizeof(ini), "%s%s", global,
             brood_section(b, sizeof(b), "brood_b", pb, "count = 1\n"));
    reload_with(r.app, path, ini);
    for (int i = 0; i < 100 && atomic_load(&brood_stops) < 2; i++)
        usleep(50000);
    ck_assert_int_eq(atomic_load(&brood_stops), 2); /* brood_a, on each worker */
    ck_assert_int_eq(atomic_load(&brood_stopped_early), 0);
    for (int i = 0; i < 6; i++) {
        pid_t pid = brood_pids[i].pid;
        if (strcmp(brood_pids[i].svc, "brood_a") == 0) {
            ck_assert_msg(not_our_child(pid), "brood_a's child %d outlived it", (int)pid);
            ck_assert(logged_child("brood_a", pid, "exited after SIGTERM (returncode -15)"));
        } else {
            ck_assert_msg(running_child(pid), "brood_b's child %d did not survive", (int)pid);
        }
    }
    stop_app(th, &r, path);
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);
    ck_assert_int_eq(atomic_load(&brood_stops), 4);
    ck_assert_int_eq(atomic_load(&brood_stopped_early), 0);
    ck_assert(no_children());
    for (int i = 0; i < 6; i++)
        ck_assert(not_our_child(brood_pids[i].pid));
}
END_TEST

START_TEST(test_children_that_come_and_go_leave_no_trace_on_the_list)
{
    register_brood();
    brood_reset();
    char ini[1024], a[256], path[64];
    snprintf(ini, sizeof(ini), "[global]\nworkers = 2\nadmin = off\n\n%s",
             brood_section(a, sizeof(a), "brood_a", free_port(), "count = 0\nshort = 300\n"));
    pthread_t th;
    runner_t r;
    start_app(ini, path, &th, &r);
    for (int i = 0; i < 300 && atomic_load(&short_done) + atomic_load(&short_bad) < 2; i++)
        usleep(50000);
    stop_app(th, &r, path);
    cio_log_set_handler(NULL, NULL, CIO_LOG_DEBUG);
    ck_assert_int_eq(atomic_load(&short_bad), 0);  /* each started and exited 0 */
    ck_assert_int_eq(atomic_load(&short_done), 2); /* 300 on each worker, each lost */
    ck_assert_int_eq(atomic_load(&short_left), 0); /* and none left on a list */
    ck_assert(no_children());
}
END_TEST

static Suite *app_suite(void)
{
    Suite *s = suite_create("app");
    TCase *tc = cio_test_case("app");
    CIO_TEST(tc, test_builtin_services_are_registered_and_names_are_checked);
    CIO_TEST(tc, test_app_new_names_the_line_of_an_unknown_or_unfit_service);
    CIO_TEST(tc, test_app_new_lists_the_first_service_errors_then_their_count);
    CIO_TEST(tc, test_an_app_serves_reloads_and_stops_through_the_api);
    CIO_TEST(tc, test_an_address_in_use_fails_the_start);
    CIO_TEST(tc, test_stop_aborts_connections_held_on_every_worker_at_drain_timeout);
    CIO_TEST(tc, test_a_reload_of_a_non_socket_setting_keeps_the_connections);
    CIO_TEST(tc, test_a_reload_moves_a_listener_to_another_service_or_balance_on_its_sockets);
    CIO_TEST(tc, test_the_admin_port_survives_nul_bytes_and_slow_clients);
    CIO_TEST(tc, test_finished_drains_are_released_across_reloads);
    CIO_TEST(tc, test_a_service_lives_once_per_worker_across_listeners_and_reloads);
    CIO_TEST(tc, test_service_keys_are_checked_at_their_lines);
    CIO_TEST(tc, test_a_service_whose_start_fails_fails_the_app_and_ends_its_tasks);
    CIO_TEST(tc, test_the_app_logs_through_the_programs_handler_and_reads_right);
    CIO_TEST(tc, test_drain_fails_health_checks_while_connections_and_accepts_go_on);
    CIO_TEST(tc, test_admin_health_and_drain_answer_only_their_methods);
    CIO_TEST(tc, test_the_agent_caps_idle_clients_and_says_maint_while_stopping);
    CIO_TEST(tc, test_the_agent_weight_falls_linearly_with_the_loop_lag);
    CIO_TEST(tc, test_a_stop_ends_the_services_children_then_runs_stop);
    CIO_TEST(tc, test_a_reload_that_removes_a_service_ends_its_children_only);
    CIO_TEST(tc, test_children_that_come_and_go_leave_no_trace_on_the_list);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(app_suite)
