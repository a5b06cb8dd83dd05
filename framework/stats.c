/*
 * framework/stats.c: statistics of a running app in Prometheus text format.
 *
 * Every worker snapshots its loop's counters four times a second, on a timer
 * of its own whose lateness is the loop lag; readers on any thread take the
 * snapshot under a lock. Connection counts come straight from the sharded
 * servers, which any thread may read. The "stats" service serves the text
 * over HTTP (GET /metrics), as the admin listener does; both answer a load
 * balancer's GET /health (health.c), and the admin listener alone takes
 * POST /drain and POST /undrain, which change it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#define TICK 0.25 /* seconds between snapshots */

/* ---- the workers' tickers ---------------------------------------------------- */

static int tick_cb(void *arg)
{
    cio__worker_stats_t *ws = arg;
    cio_loop_t *loop = cio_get_running_loop();
    double now = cio_loop_time(loop);
    double lag = now - cio_handle_when(ws->tick);
    pthread_mutex_lock(&ws->mu);
    cio_loop_get_stats(loop, &ws->loop);
    ws->lag = lag > 0 ? lag : 0;
    if (ws->lag > ws->lag_max)
        ws->lag_max = ws->lag;
    pthread_mutex_unlock(&ws->mu);
    if (ws->stopping)
        return 0;
    return cio_loop_call_later(loop, TICK, tick_cb, ws, &ws->tick);
}

static int start_task(void *arg, void **result)
{
    cio_app_t *app = arg;
    cio_loop_t *loop = cio_get_running_loop();
    for (size_t i = 0; i < app->nworkers; i++)
        if (cio_workers_loop(app->workers, i) == loop) {
            app->wstats[i].stopping = false;
            return cio_loop_call_later(loop, 0, tick_cb, &app->wstats[i], &app->wstats[i].tick);
        }
    return -ENOENT;
}

static int stop_task(void *arg, void **result)
{
    cio_app_t *app = arg;
    cio_loop_t *loop = cio_get_running_loop();
    for (size_t i = 0; i < app->nworkers; i++)
        if (cio_workers_loop(app->workers, i) == loop) {
            app->wstats[i].stopping = true;
            cio_handle_cancel(app->wstats[i].tick);
        }
    return 0;
}

int cio__stats_start(cio_app_t *app)
{
    return cio__on_every_worker(app, start_task, app);
}

void cio__stats_stop(cio_app_t *app)
{
    cio__on_every_worker(app, stop_task, app);
}

/* ---- the Prometheus text ------------------------------------------------------------ */

typedef struct metric {
    const char *name, *type, *help;
    size_t offset; /* of a uint64_t in cio_loop_stats_t */
} metric_t;

#define LOOP_METRIC(n, t, f, h)                                                                    \
    {                                                                                              \
        n, t, h, offsetof(cio_loop_stats_t, f)                                                     \
    }

static const metric_t loop_metrics[] = {
    LOOP_METRIC("coreio_loop_iterations_total", "counter", iterations, "Event loop iterations."),
    LOOP_METRIC("coreio_loop_callbacks_total", "counter", callbacks, "Callbacks run."),
    LOOP_METRIC("coreio_loop_ready", "gauge", ready, "Callbacks waiting in the ready queue."),
    LOOP_METRIC("coreio_loop_timers", "gauge", timers, "Timers scheduled."),
    LOOP_METRIC("coreio_mailbox_received_total", "counter", mailbox_received,
                "Messages received from other threads."),
    LOOP_METRIC("coreio_mailbox_wakeups_total", "counter", mailbox_wakeups,
                "Wake-ups of the sleeping loop by other threads."),
    LOOP_METRIC("coreio_mailbox_depth", "gauge", mailbox_depth,
                "Messages from other threads waiting."),
    LOOP_METRIC("coreio_executor_jobs", "gauge", executor_jobs,
                "run_in_executor jobs of the loop not finished."),
    LOOP_METRIC("coreio_bytes_in_total", "counter", bytes_in, "Bytes read by transports."),
    LOOP_METRIC("coreio_bytes_out_total", "counter", bytes_out, "Bytes sent by transports."),
    LOOP_METRIC("coreio_connections_accepted_total", "counter", connections_accepted,
                "Connections accepted."),
    LOOP_METRIC("coreio_transports", "gauge", transports, "Connections and endpoints open."),
};

static void header(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void format_loops(FILE *f, cio_app_t *app, const cio_loop_stats_t *snap, const double *lag,
                         const double *lag_max)
{
    for (size_t m = 0; m < sizeof(loop_metrics) / sizeof(loop_metrics[0]); m++) {
        const metric_t *mt = &loop_metrics[m];
        header(f, mt->name, mt->type, mt->help);
        for (size_t i = 0; i < app->nworkers; i++) {
            uint64_t v;
            memcpy(&v, (const char *)&snap[i] + mt->offset, sizeof(v));
            fprintf(f, "%s{worker=\"%zu\"} %llu\n", mt->name, i, (unsigned long long)v);
        }
    }
    header(f, "coreio_loop_lag_seconds", "gauge",
           "How late the loop ran its 4 Hz timer (libevent's coarse clock adds up to 4 ms).");
    for (size_t i = 0; i < app->nworkers; i++)
        fprintf(f, "coreio_loop_lag_seconds{worker=\"%zu\"} %.6f\n", i, lag[i]);
    header(f, "coreio_loop_lag_max_seconds", "gauge", "The worst loop lag since the start.");
    for (size_t i = 0; i < app->nworkers; i++)
        fprintf(f, "coreio_loop_lag_max_seconds{worker=\"%zu\"} %.6f\n", i, lag_max[i]);
}

static void format_listeners(FILE *f, cio_app_t *app, size_t *counts)
{
    static const struct {
        const char *name, *type, *help;
        size_t (*fn)(const cio_sharded_t *, size_t *, size_t);
    } lm[] = {
        {"coreio_listener_connections_active", "gauge", "Connections open, per listener.",
         cio_sharded_connections},
        {"coreio_listener_connections_accepted_total", "counter",
         "Connections accepted, per listener.", cio_sharded_accepted},
    };
    for (size_t m = 0; m < 2; m++) {
        header(f, lm[m].name, lm[m].type, lm[m].help);
        pthread_mutex_lock(&app->mu);
        for (size_t k = 0; k < app->nls; k++) {
            lm[m].fn(app->ls[k]->sharded, counts, app->nworkers);
            for (size_t i = 0; i < app->nworkers; i++)
                fprintf(f, "%s{listener=\"%s\",worker=\"%zu\"} %zu\n", lm[m].name,
                        app->ls[k]->cfg.name, i, counts[i]);
        }
        pthread_mutex_unlock(&app->mu);
    }
}

/* The metrics the running services define (framework/metrics.c formats them). */
static void format_services(FILE *f, cio_app_t *app)
{
    pthread_mutex_lock(&app->mu);
    for (size_t i = 0; i < app->ninsts; i++)
        cio__metrics_format(app->insts[i]->metrics, f);
    pthread_mutex_unlock(&app->mu);
}

char *cio__stats_format(cio_app_t *app, size_t *len)
{
    size_t n = app->nworkers;
    cio_loop_stats_t *snap = calloc(n, sizeof(*snap));
    double *lag = calloc(2 * n, sizeof(*lag)), *lag_max = lag ? lag + n : NULL;
    size_t *counts = calloc(n, sizeof(*counts));
    char *text = NULL;
    FILE *f = snap && lag && counts ? open_memstream(&text, len) : NULL;
    if (f) {
        for (size_t i = 0; i < n; i++) {
            pthread_mutex_lock(&app->wstats[i].mu);
            snap[i] = app->wstats[i].loop;
            lag[i] = app->wstats[i].lag;
            lag_max[i] = app->wstats[i].lag_max;
            pthread_mutex_unlock(&app->wstats[i].mu);
        }
        header(f, "coreio_workers", "gauge", "Worker threads, one loop each.");
        fprintf(f, "coreio_workers %zu\n", n);
        format_loops(f, app, snap, lag, lag_max);
        format_listeners(f, app, counts);
        format_services(f, app);
        if (fclose(f) != 0) {
            free(text);
            text = NULL;
        }
    }
    free(snap);
    free(lag);
    free(counts);
    return text;
}

/* ---- the "stats" service: HTTP, one request per connection --------------------------- */

#define REQUEST_MAX     8192 /* bytes of request head and body */
#define REQUEST_TIMEOUT 5.0  /* seconds a client has to send its whole request */
#define CONNECTIONS_MAX 64   /* per loop: a new one beyond closes the oldest still waiting */

typedef struct stats_conn {
    cio_protocol_t base;
    cio__client_t client; /* in waiting until answered: too slow a client is aborted */
    bool control;         /* the admin listener's: /drain and /undrain are served */
    size_t need;          /* once the head is in: its length and the body's, else 0 */
    size_t len;
    char buf[REQUEST_MAX];
} stats_conn_t;

/* The connections of this thread's loop still waiting for their request
 * (the admin listener lives on one loop), oldest first. */
static __thread cio__clients_t waiting;

/* @extra is more header lines, each ending in CRLF, or "". */
static void respond(cio_transport_t *t, const char *status, const char *extra, const char *type,
                    const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %s\r\n%sContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\nServer: coreio\r\n\r\n",
                     status, extra, type, len);
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, len}};
    cio_transport_writelines(t, iov, body ? 2 : 1);
    cio_transport_close(t);
}

/*
 * A client has REQUEST_TIMEOUT to send its request (slowloris), and when
 * CONNECTIONS_MAX wait the oldest goes (a flood): a fresh client is always
 * answered and the admin never holds more descriptors for idle clients.
 */
static int stats_made(cio_protocol_t *p, cio_transport_t *t)
{
    stats_conn_t *c = (stats_conn_t *)p;
    return cio__clients_add(&waiting, &c->client, t, CONNECTIONS_MAX, REQUEST_TIMEOUT);
}

/* What the admin serves: the methods each path allows, and whether it changes the app. */
static const struct route {
    const char *path;
    const char *allow; /* the 405's Allow header */
    bool post;         /* POST, else GET and HEAD */
    bool control;      /* only on the admin listener */
} routes[] = {
    {"/metrics", "Allow: GET, HEAD\r\n", false, false},
    {"/health", "Allow: GET, HEAD\r\n", false, false},
    {"/drain", "Allow: POST\r\n", true, true},
    {"/undrain", "Allow: POST\r\n", true, true},
};

/* The route the request target @p p (up to the space before the version) names, or NULL. */
static const struct route *find_route(const char *p, bool control)
{
    size_t n = strcspn(p, " ?\r\n"); /* a query string does not change the resource */
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (strlen(routes[i].path) == n && strncmp(p, routes[i].path, n) == 0)
            return routes[i].control && !control ? NULL : &routes[i];
    return NULL;
}

static void answer_metrics(stats_conn_t *c, cio_app_t *app, bool head)
{
    size_t len = 0;
    char *text = app ? cio__stats_format(app, &len) : NULL;
    if (!text)
        respond(c->client.t, "503 Service Unavailable", "", "text/plain", "", 0);
    else
        respond(c->client.t, "200 OK", "", "text/plain; version=0.0.4", head ? NULL : text, len);
    free(text);
}

/* GET /health: 200 while serving, 503 while draining or stopping; the body says which. */
static void answer_health(stats_conn_t *c, cio_app_t *app, bool head)
{
    char body[16];
    cio__health_t h = app ? cio__health(app) : CIO__HEALTH_STOPPING;
    int n = snprintf(body, sizeof(body), "%s\n", cio__health_word(h));
    respond(c->client.t, h == CIO__HEALTH_SERVING ? "200 OK" : "503 Service Unavailable",
            "Cache-Control: no-store\r\n", "text/plain", head ? NULL : body, (size_t)n);
}

/* POST /drain, /undrain: the new state, as GET /health would name it. */
static void answer_drain(stats_conn_t *c, cio_app_t *app, bool on)
{
    if (!app) {
        respond(c->client.t, "503 Service Unavailable", "", "text/plain", "", 0);
        return;
    }
    cio_app_drain(app, on);
    const char *body = on ? "draining\n" : "serving\n";
    respond(c->client.t, "200 OK", "", "text/plain", body, strlen(body));
}

/*
 * A whole request is in: a path of the routes with one of its methods gets
 * its answer, any other path 404 whatever the method, another method 405
 * with the methods the path allows (RFC 9110 15.5.6). Then the connection
 * closes.
 */
static void answer(stats_conn_t *c)
{
    cio__clients_remove(&c->client);
    bool head = strncmp(c->buf, "HEAD ", 5) == 0, get = strncmp(c->buf, "GET ", 4) == 0;
    bool post = strncmp(c->buf, "POST ", 5) == 0;
    const char *sp = strchr(c->buf, ' ');
    const struct route *r = sp ? find_route(sp + 1, c->control) : NULL;
    if (!r) {
        respond(c->client.t, "404 Not Found", "", "text/plain", "", 0);
        return;
    }
    if (r->post ? !post : !head && !get) {
        respond(c->client.t, "405 Method Not Allowed", r->allow, "text/plain", "", 0);
        return;
    }
    cio_app_t *app = cio__app_current();
    if (r == &routes[0])
        answer_metrics(c, app, head);
    else if (r == &routes[1])
        answer_health(c, app, head);
    else
        answer_drain(c, app, r == &routes[2]);
}

/* The length of the head at the start of @p b (@p n bytes), up to its empty line; 0: not all in. */
static size_t head_length(const char *b, size_t n)
{
    const char *crlf = memmem(b, n, "\r\n\r\n", 4), *lf = memmem(b, n, "\n\n", 2);
    size_t a = crlf ? (size_t)(crlf - b) + 4 : SIZE_MAX, z = lf ? (size_t)(lf - b) + 2 : SIZE_MAX;
    return a < z ? a : z == SIZE_MAX ? 0 : z;
}

/* The decimal at @p v up to the end of its line (blanks around allowed), or -1. */
static long long field_number(const char *v, const char *end)
{
    long long n = 0;
    bool digits = false;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    for (; v < end && *v >= '0' && *v <= '9'; v++, digits = true)
        if (n <= REQUEST_MAX) /* past it the exact value does not matter: it cannot overflow */
            n = n * 10 + (*v - '0');
    while (v < end && (*v == ' ' || *v == '\t' || *v == '\r'))
        v++;
    return digits && v == end ? n : -1;
}

/*
 * The body length the head @p h (@p n bytes) announces: 0 without
 * Content-Length, more than REQUEST_MAX for a body too large to take, -1
 * for a malformed one or two that differ, -2 with Transfer-Encoding.
 */
static long long body_length(const char *h, size_t n)
{
    long long len = 0;
    bool seen = false;
    for (const char *line = memchr(h, '\n', n); line && ++line < h + n;
         line = memchr(line, '\n', (size_t)(h + n - line))) {
        const char *end = memchr(line, '\n', (size_t)(h + n - line));
        if (!end)
            break; /* not reached: the head ends with an empty line */
        if ((size_t)(end - line) > 18 && strncasecmp(line, "transfer-encoding:", 18) == 0)
            return -2;
        if ((size_t)(end - line) <= 15 || strncasecmp(line, "content-length:", 15) != 0)
            continue;
        long long v = field_number(line + 15, end);
        if (v < 0 || (seen && v != len))
            return -1;
        len = v;
        seen = true;
    }
    return len;
}

/* The head is in (@p hlen bytes): how much to read in all, or 0 once refused. */
static size_t request_length(stats_conn_t *c, size_t hlen)
{
    const char *status = NULL;
    long long body = memchr(c->buf, '\0', hlen) ? -1 : body_length(c->buf, hlen);
    if (body == -1) /* RFC 9110 5.5: NUL is invalid; RFC 9112 6.3: a bad length too */
        status = "400 Bad Request";
    else if (body == -2)
        status = "501 Not Implemented"; /* no transfer coding is understood */
    else if ((size_t)body >= sizeof(c->buf) - hlen)
        status = "413 Content Too Large";
    if (!status)
        return hlen + (size_t)body;
    cio__clients_remove(&c->client);
    respond(c->client.t, status, "", "text/plain", "", 0);
    return 0;
}

/* A body, if the head announced one, is read whole before the answer, then ignored. */
static int stats_data(cio_protocol_t *p, const void *data, size_t len)
{
    stats_conn_t *c = (stats_conn_t *)p;
    if (cio_transport_is_closing(c->client.t))
        return 0;
    if (len >= sizeof(c->buf) - c->len) {
        cio__clients_remove(&c->client);
        respond(c->client.t,
                c->need ? "413 Content Too Large" : "431 Request Header Fields Too Large", "",
                "text/plain", "", 0);
        return 0;
    }
    memcpy(c->buf + c->len, data, len);
    c->len += len;
    c->buf[c->len] = '\0';
    /* The head ends at an empty line; bytes are counted, so a NUL cannot hide it. */
    size_t hlen = c->need ? 0 : head_length(c->buf, c->len);
    if (hlen && !(c->need = request_length(c, hlen)))
        return 0;
    if (c->need && c->len >= c->need)
        answer(c);
    return 0;
}

static void stats_lost(cio_protocol_t *p, int err)
{
    stats_conn_t *c = (stats_conn_t *)p;
    cio__clients_remove(&c->client);
    free(p);
}

static const cio_protocol_ops_t stats_ops = {
    .connection_made = stats_made,
    .data_received = stats_data,
    .connection_lost = stats_lost,
};

/* A connection's protocol; @p control serves /drain and /undrain too. */
static cio_protocol_t *stats_conn_new(bool control)
{
    stats_conn_t *c = malloc(sizeof(*c));
    if (!c)
        return NULL;
    c->base.ops = &stats_ops;
    c->client = (cio__client_t){0};
    c->control = control;
    c->need = 0;
    c->len = 0;
    return &c->base;
}

cio_protocol_t *cio__stats_protocol(void *arg)
{
    return stats_conn_new(true);
}

/* A "stats" listener may face more clients than the admin's: it cannot drain the app. */
static cio_protocol_t *stats_factory(cio_service_ctx_t *ctx)
{
    return stats_conn_new(false);
}

const cio_service_t cio__service_stats = {
    .name = "stats",
    .kinds = CIO_SERVICE_STREAM,
    .doc = "the running app's statistics in Prometheus text format, over HTTP",
    .factory = stats_factory,
};
