/*
 * tests/test_app.c: the framework (coreio/service.h, coreio/app.h): the
 * service registry, what cio_app_new() checks, and an app run in a thread,
 * reloaded and stopped through the API with a real client on loopback.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

static cio_protocol_t *tag_factory(void *arg)
{
    tag_conn_t *c = calloc(1, sizeof(*c));
    c->base.ops = &tag_ops;
    c->tag = arg;
    return &c->base;
}

static int tag_init(void *arg, cio_loop_t *loop, void **state)
{
    ck_assert_ptr_eq(loop, cio_get_running_loop()); /* on the worker's own thread */
    atomic_fetch_add(&inits, 1);
    *state = arg;
    return 0;
}

static void tag_teardown(void *state)
{
    atomic_fetch_add(&teardowns, 1);
}

static void register_tag(void)
{
    static const cio_service_t tag = {.name = "tag",
                                      .kinds = CIO_SERVICE_STREAM,
                                      .factory = tag_factory,
                                      .worker_init = tag_init,
                                      .worker_teardown = tag_teardown,
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
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(app_suite)
