/*
 * tests/test_metrics.c: the metrics services define (coreio/metrics.h) and
 * their registry (framework/metrics.c, whose internal API the library
 * exports for this suite). The Prometheus text is compared byte for byte;
 * names, bounds and clashes are checked at registration; workers update
 * their own handles while another thread scrapes; every allocation failure
 * leaves the set usable and nothing leaked (ASan judges the memory at exit).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "testutil.h"

/* framework/metrics.h, exported for this suite. */
typedef struct cio__metrics cio__metrics_t;
cio__metrics_t *cio__metrics_new(const char *prefix, size_t nworkers);
cio_metric_t *cio__metrics_counter(cio__metrics_t *set, size_t worker, const char *name,
                                   const char *help, int *err);
cio_metric_t *cio__metrics_gauge(cio__metrics_t *set, size_t worker, const char *name,
                                 const char *help, int *err);
cio_metric_t *cio__metrics_histogram(cio__metrics_t *set, size_t worker, const char *name,
                                     const char *help, const double *bounds, size_t nbounds,
                                     int *err);
int cio__metrics_format(cio__metrics_t *set, FILE *out);
void cio__metrics_free(cio__metrics_t *set);

/* loop/alloc.h's hook, exported for tests. */
void cio__alloc_fail_after(unsigned long n);
unsigned long cio__alloc_failures(void);

/* The text of @p set, malloc'd. */
static char *text_of(cio__metrics_t *set)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    int rc = cio__metrics_format(set, f);
    ck_assert_msg(rc == 0, "format: %s", cio_err_name(rc));
    ck_assert_int_eq(fclose(f), 0);
    return text;
}

static void assert_text(cio__metrics_t *set, const char *expected)
{
    char *text = text_of(set);
    ck_assert_str_eq(text, expected);
    free(text);
}

/* The value of the sample @p series (name and labels) in @p text; -1 if absent. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

/* ---- the text ------------------------------------------------------------------ */

static const double latency_bounds[] = {0.005, 0.1, 1};

/* Worker 0 registers, worker 1 finds the same metrics; both update their own. */
START_TEST(test_text_of_counters_gauges_and_histograms_over_two_workers_is_exact)
{
    cio__metrics_t *set = cio__metrics_new("my-svc", 2);
    ck_assert_ptr_nonnull(set);
    cio_metric_t *req[2], *depth[2], *lat[2];
    for (size_t w = 0; w < 2; w++) {
        int e1, e2, e3;
        req[w] = cio__metrics_counter(set, w, "requests_total", "Requests served.", &e1);
        depth[w] = cio__metrics_gauge(set, w, "queue_depth", "Back\\slash and\nnewline.", &e2);
        lat[w] = cio__metrics_histogram(set, w, "latency_seconds", "Request latency.",
                                        latency_bounds, 3, &e3);
        ck_assert_msg(e1 == 0 && e2 == 0 && e3 == 0, "%s %s %s", cio_err_name(e1), cio_err_name(e2),
                      cio_err_name(e3));
    }
    cio_counter_add(req[0], 3);
    cio_counter_add(req[0], 4);
    cio_counter_add(req[1], 1);
    cio_gauge_set(depth[0], 2.5);
    cio_gauge_add(depth[0], -1);
    cio_gauge_add(depth[1], -0.25);
    cio_histogram_observe(lat[0], 0.00390625);
    cio_histogram_observe(lat[0], 0.0625);
    cio_histogram_observe(lat[0], 0.5);
    cio_histogram_observe(lat[0], 2);
    assert_text(set, "# HELP my_svc_requests_total Requests served.\n"
                     "# TYPE my_svc_requests_total counter\n"
                     "my_svc_requests_total{worker=\"0\"} 7\n"
                     "my_svc_requests_total{worker=\"1\"} 1\n"
                     "# HELP my_svc_queue_depth Back\\\\slash and\\nnewline.\n"
                     "# TYPE my_svc_queue_depth gauge\n"
                     "my_svc_queue_depth{worker=\"0\"} 1.5\n"
                     "my_svc_queue_depth{worker=\"1\"} -0.25\n"
                     "# HELP my_svc_latency_seconds Request latency.\n"
                     "# TYPE my_svc_latency_seconds histogram\n"
                     "my_svc_latency_seconds_bucket{worker=\"0\",le=\"0.005\"} 1\n"
                     "my_svc_latency_seconds_bucket{worker=\"0\",le=\"0.1\"} 2\n"
                     "my_svc_latency_seconds_bucket{worker=\"0\",le=\"1\"} 3\n"
                     "my_svc_latency_seconds_bucket{worker=\"0\",le=\"+Inf\"} 4\n"
                     "my_svc_latency_seconds_sum{worker=\"0\"} 2.56640625\n"
                     "my_svc_latency_seconds_count{worker=\"0\"} 4\n"
                     "my_svc_latency_seconds_bucket{worker=\"1\",le=\"0.005\"} 0\n"
                     "my_svc_latency_seconds_bucket{worker=\"1\",le=\"0.1\"} 0\n"
                     "my_svc_latency_seconds_bucket{worker=\"1\",le=\"1\"} 0\n"
                     "my_svc_latency_seconds_bucket{worker=\"1\",le=\"+Inf\"} 0\n"
                     "my_svc_latency_seconds_sum{worker=\"1\"} 0\n"
                     "my_svc_latency_seconds_count{worker=\"1\"} 0\n");
    cio__metrics_free(set);
}
END_TEST

START_TEST(test_help_escapes_backslash_and_newline_only_and_may_be_left_out)
{
    cio__metrics_t *set = cio__metrics_new("s", 1);
    ck_assert_ptr_nonnull(cio__metrics_gauge(set, 0, "a", "\\n is \"not\"\na newline\\", NULL));
    ck_assert_ptr_nonnull(cio__metrics_gauge(set, 0, "b", NULL, NULL));
    ck_assert_ptr_nonnull(cio__metrics_gauge(set, 0, "c", "", NULL));
    assert_text(set, "# HELP s_a \\\\n is \"not\"\\na newline\\\\\n"
                     "# TYPE s_a gauge\n"
                     "s_a{worker=\"0\"} 0\n"
                     "# TYPE s_b gauge\n"
                     "s_b{worker=\"0\"} 0\n"
                     "# TYPE s_c gauge\n"
                     "s_c{worker=\"0\"} 0\n");
    cio__metrics_free(set);
}
END_TEST

/* A bound is inclusive ("le"); below the first, above the last, infinities and NaN. */
START_TEST(test_histogram_counts_each_value_in_the_first_bucket_whose_bound_it_does_not_exceed)
{
    static const double bounds[] = {-1, 0, 0.1, 10};
    cio__metrics_t *set = cio__metrics_new(NULL, 1);
    cio_metric_t *h = cio__metrics_histogram(set, 0, "v", NULL, bounds, 4, NULL);
    cio_metric_t *only_inf = cio__metrics_histogram(set, 0, "w", NULL, NULL, 0, NULL);
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_nonnull(only_inf);
    const double values[] = {-INFINITY, -1, -0.5, 0, 0.1, 0.1000001, 10, 11, INFINITY};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        cio_histogram_observe(h, values[i]);
    cio_histogram_observe(only_inf, 3);
    cio_histogram_observe(only_inf, NAN);
    assert_text(set, "# TYPE v histogram\n"
                     "v_bucket{worker=\"0\",le=\"-1\"} 2\n"
                     "v_bucket{worker=\"0\",le=\"0\"} 4\n"
                     "v_bucket{worker=\"0\",le=\"0.1\"} 5\n"
                     "v_bucket{worker=\"0\",le=\"10\"} 7\n"
                     "v_bucket{worker=\"0\",le=\"+Inf\"} 9\n"
                     "v_sum{worker=\"0\"} NaN\n" /* -Inf + Inf */
                     "v_count{worker=\"0\"} 9\n"
                     "# TYPE w histogram\n"
                     "w_bucket{worker=\"0\",le=\"+Inf\"} 2\n"
                     "w_sum{worker=\"0\"} NaN\n"
                     "w_count{worker=\"0\"} 2\n");
    cio__metrics_free(set);
}
END_TEST

/* Floats read back exactly, in the fewest of 15 to 17 digits; infinities as the format spells them.
 */
START_TEST(test_gauge_values_are_written_so_they_read_back_exactly)
{
    cio__metrics_t *set = cio__metrics_new("", 6);
    cio_metric_t *g[6];
    for (size_t w = 0; w < 6; w++)
        g[w] = cio__metrics_gauge(set, w, "g", NULL, NULL);
    cio_gauge_set(g[0], 0.1);
    cio_gauge_add(g[1], 0.1);
    cio_gauge_add(g[1], 0.2); /* 0.30000000000000004 */
    cio_gauge_set(g[2], 1e21);
    cio_gauge_set(g[3], -INFINITY);
    cio_gauge_set(g[4], INFINITY);
    cio_gauge_set(g[5], 1.0 / 3);
    assert_text(set, "# TYPE g gauge\n"
                     "g{worker=\"0\"} 0.1\n"
                     "g{worker=\"1\"} 0.30000000000000004\n"
                     "g{worker=\"2\"} 1e+21\n"
                     "g{worker=\"3\"} -Inf\n"
                     "g{worker=\"4\"} +Inf\n"
                     "g{worker=\"5\"} 0.3333333333333333\n");
    cio__metrics_free(set);
}
END_TEST

START_TEST(test_prefix_characters_outside_names_become_underscores)
{
    static const struct {
        const char *prefix, *text;
    } cases[] = {
        {"http-hello.v2", "# TYPE http_hello_v2_up gauge\nhttp_hello_v2_up{worker=\"0\"} 0\n"},
        {"9lives", "# TYPE _9lives_up gauge\n_9lives_up{worker=\"0\"} 0\n"},
        {NULL, "# TYPE up gauge\nup{worker=\"0\"} 0\n"},
        {"", "# TYPE up gauge\nup{worker=\"0\"} 0\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cio__metrics_t *set = cio__metrics_new(cases[i].prefix, 1);
        ck_assert_ptr_nonnull(cio__metrics_gauge(set, 0, "up", NULL, NULL));
        assert_text(set, cases[i].text);
        cio__metrics_free(set);
    }
}
END_TEST

/* ---- registration -------------------------------------------------------------- */

START_TEST(test_registering_again_returns_that_workers_handle_on_the_same_metric)
{
    cio__metrics_t *set = cio__metrics_new("s", 3);
    int err = -1;
    cio_metric_t *w0 = cio__metrics_counter(set, 0, "hits_total", "Hits.", &err);
    ck_assert_int_eq(err, 0);
    cio_metric_t *w2 = cio__metrics_counter(set, 2, "hits_total", "Hits.", &err);
    ck_assert_int_eq(err, 0);
    ck_assert_ptr_nonnull(w2);
    ck_assert_ptr_ne(w0, w2);
    ck_assert_ptr_eq(cio__metrics_counter(set, 0, "hits_total", "Hits.", NULL), w0);
    ck_assert_ptr_eq(cio__metrics_counter(set, 2, "hits_total", "Hits.", NULL), w2);
    cio_counter_add(w2, 5);
    cio_counter_add(cio__metrics_counter(set, 1, "hits_total", "Hits.", NULL), 2);
    assert_text(set, "# HELP s_hits_total Hits.\n"
                     "# TYPE s_hits_total counter\n"
                     "s_hits_total{worker=\"0\"} 0\n"
                     "s_hits_total{worker=\"1\"} 2\n"
                     "s_hits_total{worker=\"2\"} 5\n");
    /* The same bounds from another array, and "" for no help as NULL is. */
    double b[] = {1, 2};
    cio_metric_t *h0 = cio__metrics_histogram(set, 0, "h", NULL, b, 2, NULL);
    ck_assert_ptr_nonnull(h0);
    ck_assert_ptr_eq(cio__metrics_histogram(set, 0, "h", "", (double[]){1, 2}, 2, NULL), h0);
    cio__metrics_free(set);
}
END_TEST

START_TEST(test_bad_names_and_workers_are_einval)
{
    cio__metrics_t *set = cio__metrics_new("s", 2);
    char longest[CIO_METRIC_NAME_MAX + 2];
    memset(longest, 'a', sizeof(longest));
    strcpy(longest + CIO_METRIC_NAME_MAX - 6, "_total"); /* exactly the limit */
    static const char *const counters[] = {
        "",         "1st_total", "__x_total", "a-b_total", "a:b_total", "a b_total",
        "requests", "_total_x",  "totals",    "a\n_total", "é_total",
    };
    int err = 0;
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
        ck_assert_ptr_null(cio__metrics_counter(set, 0, counters[i], NULL, &err));
        ck_assert_msg(err == -EINVAL, "counter \"%s\": %s", counters[i], cio_err_name(err));
    }
    ck_assert_ptr_null(cio__metrics_counter(set, 0, NULL, NULL, &err));
    ck_assert_int_eq(err, -EINVAL);
    ck_assert_ptr_null(cio__metrics_gauge(set, 0, "open_total", NULL, &err));
    ck_assert_int_eq(err, -EINVAL); /* "_total" is for counters */
    ck_assert_ptr_null(cio__metrics_histogram(set, 0, "latency_total", NULL, NULL, 0, &err));
    ck_assert_int_eq(err, -EINVAL);
    ck_assert_ptr_null(cio__metrics_gauge(set, 2, "up", NULL, &err));
    ck_assert_int_eq(err, -EINVAL); /* no worker 2 */
    ck_assert_ptr_null(cio__metrics_gauge(NULL, 0, "up", NULL, &err));
    ck_assert_int_eq(err, -EINVAL);
    ck_assert_ptr_nonnull(cio__metrics_counter(set, 0, longest, NULL, &err));
    ck_assert_int_eq(err, 0);
    memmove(longest + 1, longest, CIO_METRIC_NAME_MAX + 1); /* one byte too long */
    ck_assert_ptr_null(cio__metrics_counter(set, 0, longest, NULL, &err));
    ck_assert_int_eq(err, -EINVAL);
    ck_assert_ptr_nonnull(cio__metrics_gauge(set, 1, "_ok9", NULL, &err));
    ck_assert_ptr_nonnull(cio__metrics_counter(set, 1, "_total", NULL, &err));
    cio__metrics_free(set);
}
END_TEST

START_TEST(test_bad_histogram_bounds_are_einval)
{
    cio__metrics_t *set = cio__metrics_new("s", 1);
    double many[CIO_HISTOGRAM_BOUNDS_MAX + 1];
    for (size_t i = 0; i < CIO_HISTOGRAM_BOUNDS_MAX + 1; i++)
        many[i] = (double)i;
    static const double decreasing[] = {2, 1}, equal[] = {1, 1}, nan[] = {0, NAN},
                        inf[] = {1, INFINITY}, ninf[] = {-INFINITY, 1};
    const struct {
        const double *b;
        size_t n;
    } bad[] = {{decreasing, 2},
               {equal, 2},
               {nan, 2},
               {inf, 2},
               {ninf, 2},
               {NULL, 1},
               {many, CIO_HISTOGRAM_BOUNDS_MAX + 1}};
    int err = 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_ptr_null(cio__metrics_histogram(set, 0, "h", NULL, bad[i].b, bad[i].n, &err));
        ck_assert_msg(err == -EINVAL, "case %zu: %s", i, cio_err_name(err));
    }
    ck_assert_ptr_nonnull(
        cio__metrics_histogram(set, 0, "h", NULL, many, CIO_HISTOGRAM_BOUNDS_MAX, &err));
    ck_assert_int_eq(err, 0);
    char *text = text_of(set);
    ck_assert_ptr_nonnull(strstr(text, "s_h_bucket{worker=\"0\",le=\"31\"} 0\n"
                                       "s_h_bucket{worker=\"0\",le=\"+Inf\"} 0\n"));
    free(text);
    cio__metrics_free(set);
}
END_TEST

/* One registration of a table: kind 'c', 'g' or 'h'; its error in *@p err. */
typedef struct reg {
    char kind;
    const char *name, *help;
    const double *bounds;
    size_t nbounds;
} reg_t;

static cio_metric_t *reg(cio__metrics_t *set, size_t worker, const reg_t *r, int *err)
{
    if (r->kind == 'c')
        return cio__metrics_counter(set, worker, r->name, r->help, err);
    if (r->kind == 'g')
        return cio__metrics_gauge(set, worker, r->name, r->help, err);
    return cio__metrics_histogram(set, worker, r->name, r->help, r->bounds, r->nbounds, err);
}

/* Same name, another kind, help or bounds; or a series name another metric exposes. */
START_TEST(test_clashing_registrations_are_eexist_and_change_nothing)
{
    static const double b12[] = {1, 2}, b13[] = {1, 3};
    static const reg_t first[] = {
        {'h', "lat", "Latency.", b12, 2},
        {'g', "depth_count", "Depth.", NULL, 0},
        {'c', "x_total", "X.", NULL, 0},
    };
    static const reg_t clash[] = {
        {'g', "lat", "Latency.", NULL, 0},                                  /* another kind */
        {'h', "lat", "Latency.", b13, 2},                                   /* other bounds */
        {'h', "lat", "Latency.", b12, 1},   {'h', "lat", "Other.", b12, 2}, /* another help */
        {'h', "lat", NULL, b12, 2},         {'c', "x_total", "Y.", NULL, 0},
        {'g', "lat_sum", NULL, NULL, 0},    /* lat exposes lat_sum */
        {'g', "lat_bucket", NULL, NULL, 0}, /* and lat_bucket */
        {'h', "depth", NULL, b12, 2},       /* depth would expose depth_count */
        {'h', "lat_sum", NULL, NULL, 0},    /* lat_sum would be lat's */
    };
    cio__metrics_t *set = cio__metrics_new("s", 2);
    int err = 0;
    for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++)
        ck_assert_ptr_nonnull(reg(set, 0, &first[i], &err));
    char *before = text_of(set);
    for (size_t i = 0; i < sizeof(clash) / sizeof(clash[0]); i++) {
        ck_assert_msg(reg(set, 1, &clash[i], &err) == NULL, "case %zu registered", i);
        ck_assert_msg(err == -EEXIST, "case %zu: %s", i, cio_err_name(err));
    }
    assert_text(set, before);
    free(before);
    ck_assert_ptr_nonnull(cio__metrics_gauge(set, 1, "lat_sums", NULL, &err)); /* no clash */
    ck_assert_ptr_nonnull(cio__metrics_gauge(set, 1, "bucket", NULL, &err));
    cio__metrics_free(set);
}
END_TEST

START_TEST(test_registering_past_the_limit_is_enospc)
{
    cio__metrics_t *set = cio__metrics_new("s", 2);
    char name[32];
    int err = 0;
    for (int i = 0; i < CIO_METRICS_MAX; i++) {
        snprintf(name, sizeof(name), "g%d", i);
        ck_assert_ptr_nonnull(cio__metrics_gauge(set, (size_t)i % 2, name, NULL, &err));
    }
    ck_assert_ptr_null(cio__metrics_gauge(set, 0, "one_more", NULL, &err));
    ck_assert_msg(err == -ENOSPC, "%s", cio_err_name(err));
    ck_assert_ptr_nonnull(cio__metrics_gauge(set, 1, "g7", NULL, &err)); /* found, not added */
    ck_assert_int_eq(err, 0);
    char *text = text_of(set);
    ck_assert_double_eq(sample(text, "s_g255{worker=\"1\"}"), 0);
    ck_assert_double_eq(sample(text, "s_one_more{worker=\"0\"}"), -1);
    free(text);
    cio__metrics_free(set);
}
END_TEST

/* ---- updates ------------------------------------------------------------------- */

START_TEST(test_null_handles_and_handles_of_another_kind_change_nothing)
{
    cio_counter_add(NULL, 1);
    cio_gauge_set(NULL, 1);
    cio_gauge_add(NULL, 1);
    cio_histogram_observe(NULL, 1);
    cio__metrics_t *set = cio__metrics_new("s", 1);
    cio_metric_t *c = cio__metrics_counter(set, 0, "c_total", NULL, NULL);
    cio_metric_t *g = cio__metrics_gauge(set, 0, "g", NULL, NULL);
    cio_metric_t *h = cio__metrics_histogram(set, 0, "h", NULL, (double[]){1}, 1, NULL);
    cio_metric_t *all[] = {c, g, h};
    for (size_t i = 0; i < 3; i++) {
        if (all[i] != c)
            cio_counter_add(all[i], 1);
        if (all[i] != g) {
            cio_gauge_set(all[i], 1);
            cio_gauge_add(all[i], 1);
        }
        if (all[i] != h)
            cio_histogram_observe(all[i], 1);
    }
    assert_text(set, "# TYPE s_c_total counter\n"
                     "s_c_total{worker=\"0\"} 0\n"
                     "# TYPE s_g gauge\n"
                     "s_g{worker=\"0\"} 0\n"
                     "# TYPE s_h histogram\n"
                     "s_h_bucket{worker=\"0\",le=\"1\"} 0\n"
                     "s_h_bucket{worker=\"0\",le=\"+Inf\"} 0\n"
                     "s_h_sum{worker=\"0\"} 0\n"
                     "s_h_count{worker=\"0\"} 0\n");
    cio__metrics_free(set);
}
END_TEST

/* No 128-byte block (two cache lines) holds the handles of two workers. */
START_TEST(test_workers_handles_never_share_a_cache_line)
{
    enum { WORKERS = 4, METRICS = 60, LINE = 128 };
    cio__metrics_t *set = cio__metrics_new("s", WORKERS);
    uintptr_t lines[WORKERS][METRICS];
    static const double b[] = {1, 2, 3, 4, 5, 6, 7, 8};
    char name[32];
    for (int i = 0; i < METRICS; i++)
        for (size_t w = 0; w < WORKERS; w++) {
            cio_metric_t *m;
            snprintf(name, sizeof(name), i % 3 == 0 ? "m%d_total" : "m%d", i);
            if (i % 3 == 0)
                m = cio__metrics_counter(set, w, name, NULL, NULL);
            else if (i % 3 == 1)
                m = cio__metrics_gauge(set, w, name, NULL, NULL);
            else
                m = cio__metrics_histogram(set, w, name, NULL, b, 8, NULL);
            ck_assert_ptr_nonnull(m);
            lines[w][i] = (uintptr_t)m / LINE;
        }
    for (size_t w = 0; w < WORKERS; w++)
        for (size_t v = w + 1; v < WORKERS; v++)
            for (int i = 0; i < METRICS; i++)
                for (int j = 0; j < METRICS; j++)
                    ck_assert_msg(lines[w][i] != lines[v][j], "workers %zu and %zu share a line", w,
                                  v);
    cio__metrics_free(set);
}
END_TEST

/* ---- concurrency: each worker updates its own handles, another thread scrapes -- */

enum { THREADS = 4, UPDATES = 50000 };

typedef struct scrape {
    cio__metrics_t *set;
    _Atomic int workers_done;
    int scrapes;
} scrape_t;

typedef struct worker_arg {
    scrape_t *sc;
    size_t worker;
} worker_arg_t;

static const double conc_bounds[] = {0.5, 1, 1.5};

/* Each worker registers the same three metrics (racing the others) and updates its handles. */
static void *worker_main(void *arg)
{
    worker_arg_t *wa = arg;
    cio__metrics_t *set = wa->sc->set;
    cio_metric_t *c = cio__metrics_counter(set, wa->worker, "ops_total", "Ops.", NULL);
    cio_metric_t *g = cio__metrics_gauge(set, wa->worker, "level", "Level.", NULL);
    cio_metric_t *h =
        cio__metrics_histogram(set, wa->worker, "size_bytes", "Sizes.", conc_bounds, 3, NULL);
    ck_assert(c && g && h);
    for (int i = 0; i < UPDATES; i++) {
        cio_counter_add(c, 1);
        cio_gauge_add(g, 2);
        cio_histogram_observe(h, (double)(i % 4) * 0.5); /* 0, 0.5, 1, 1.5: sums are exact */
    }
    atomic_fetch_add(&wa->sc->workers_done, 1);
    return NULL;
}

/* Every series only grows from one scrape to the next, and _count is the +Inf bucket. */
static void check_scrape(const char *text, double prev[THREADS][3])
{
    char series[128];
    for (size_t w = 0; w < THREADS; w++) {
        const char *names[] = {"s_ops_total{worker=\"%zu\"}", "s_level{worker=\"%zu\"}",
                               "s_size_bytes_count{worker=\"%zu\"}"};
        for (size_t k = 0; k < 3; k++) {
            snprintf(series, sizeof(series), names[k], w);
            double v = sample(text, series);
            ck_assert_msg(v >= prev[w][k], "%s went from %g to %g", series, prev[w][k], v);
            prev[w][k] = v;
        }
        snprintf(series, sizeof(series), "s_size_bytes_bucket{worker=\"%zu\",le=\"+Inf\"}", w);
        ck_assert_double_eq(sample(text, series), prev[w][2]);
    }
}

static void *scraper_main(void *arg)
{
    scrape_t *sc = arg;
    double prev[THREADS][3];
    for (size_t w = 0; w < THREADS; w++)
        for (size_t k = 0; k < 3; k++)
            prev[w][k] = -1; /* not registered yet */
    bool last = false;
    while (!last) {
        last = atomic_load(&sc->workers_done) == THREADS;
        char *text = text_of(sc->set);
        check_scrape(text, prev);
        free(text);
        sc->scrapes++;
    }
    return NULL;
}

START_TEST(test_workers_update_their_handles_while_another_thread_scrapes)
{
    scrape_t sc = {.set = cio__metrics_new("s", THREADS)};
    worker_arg_t wa[THREADS];
    pthread_t scraper, workers[THREADS];
    ck_assert_int_eq(pthread_create(&scraper, NULL, scraper_main, &sc), 0);
    for (size_t w = 0; w < THREADS; w++) {
        wa[w] = (worker_arg_t){&sc, w};
        ck_assert_int_eq(pthread_create(&workers[w], NULL, worker_main, &wa[w]), 0);
    }
    for (size_t w = 0; w < THREADS; w++)
        pthread_join(workers[w], NULL);
    pthread_join(scraper, NULL);
    ck_assert_int_ge(sc.scrapes, 1);
    char *text = text_of(sc.set);
    char series[128];
    for (size_t w = 0; w < THREADS; w++) {
        snprintf(series, sizeof(series), "s_ops_total{worker=\"%zu\"}", w);
        ck_assert_double_eq(sample(text, series), UPDATES);
        snprintf(series, sizeof(series), "s_level{worker=\"%zu\"}", w);
        ck_assert_double_eq(sample(text, series), 2.0 * UPDATES);
        snprintf(series, sizeof(series), "s_size_bytes_bucket{worker=\"%zu\",le=\"1\"}", w);
        ck_assert_double_eq(sample(text, series), UPDATES / 4 * 3);
        snprintf(series, sizeof(series), "s_size_bytes_sum{worker=\"%zu\"}", w);
        ck_assert_double_eq(sample(text, series), UPDATES / 4 * 3.0);
    }
    free(text);
    cio__metrics_free(sc.set);
}
END_TEST

/* ---- out of memory ------------------------------------------------------------- */

static const double wide[CIO_HISTOGRAM_BOUNDS_MAX] = {
    1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};

/* Register a mix over 3 workers, wide histograms enough to need more than one
 * chunk per worker; a registration that runs out of memory is retried (the
 * hook fails one allocation) and must then succeed. The set's text, or NULL
 * when the set itself could not be made. */
static char *alloc_scenario(int *failures)
{
    cio__metrics_t *set = cio__metrics_new("svc", 3);
    if (!set) {
        (*failures)++;
        return NULL;
    }
    char name[32];
    for (int i = 0; i < 12; i++)
        for (size_t w = 0; w < 3; w++) {
            snprintf(name, sizeof(name), i % 4 == 0 ? "c%d_total" : "m%d", i);
            for (int attempt = 0; attempt < 2; attempt++) {
                int err = 0;
                cio_metric_t *m = i % 4 == 0 ? cio__metrics_counter(set, w, name, "C.", &err)
                                  : i % 4 == 1
                                      ? cio__metrics_gauge(set, w, name, "G.", &err)
                                      : cio__metrics_histogram(set, w, name, "H.", wide, 32, &err);
                ck_assert_msg(m || err == -ENOMEM, "%s: %s", name, cio_err_name(err));
                ck_assert_msg(m || attempt == 0, "%s failed twice", name);
                if (!m) {
                    (*failures)++;
                    continue;
                }
                cio_counter_add(m, w + 1);
                cio_gauge_add(m, (double)w);
                cio_histogram_observe(m, (double)i);
                break;
            }
        }
    char *text = text_of(set);
    cio__metrics_free(set);
    return text;
}

START_TEST(test_every_allocation_failure_is_enomem_and_leaves_the_set_usable)
{
    int failures = 0;
    char *expected = alloc_scenario(&failures);
    ck_assert_int_eq(failures, 0);
    ck_assert_ptr_nonnull(strstr(expected, "svc_m11_count{worker=\"2\"} 1\n"));
    unsigned long n;
    for (n = 1; n < 1000; n++) {
        failures = 0;
        cio__alloc_fail_after(n);
        char *text = alloc_scenario(&failures);
        cio__alloc_fail_after(0);
        unsigned long failed = cio__alloc_failures();
        ck_assert_int_eq((unsigned long)failures, failed);
        if (text)
            ck_assert_str_eq(text, expected);
        free(text);
        if (!failed)
            break;
    }
    ck_assert_uint_gt(n, 4); /* the set, its chunks' table, families and chunks */
    ck_assert_uint_lt(n, 1000);
    free(expected);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = cio_test_case("text");
    CIO_TEST(tc, test_text_of_counters_gauges_and_histograms_over_two_workers_is_exact);
    CIO_TEST(tc, test_help_escapes_backslash_and_newline_only_and_may_be_left_out);
    CIO_TEST(tc,
             test_histogram_counts_each_value_in_the_first_bucket_whose_bound_it_does_not_exceed);
    CIO_TEST(tc, test_gauge_values_are_written_so_they_read_back_exactly);
    CIO_TEST(tc, test_prefix_characters_outside_names_become_underscores);
    suite_add_tcase(s, tc);
    tc = cio_test_case("registration");
    CIO_TEST(tc, test_registering_again_returns_that_workers_handle_on_the_same_metric);
    CIO_TEST(tc, test_bad_names_and_workers_are_einval);
    CIO_TEST(tc, test_bad_histogram_bounds_are_einval);
    CIO_TEST(tc, test_clashing_registrations_are_eexist_and_change_nothing);
    CIO_TEST(tc, test_registering_past_the_limit_is_enospc);
    suite_add_tcase(s, tc);
    tc = cio_test_case("updates");
    CIO_TEST(tc, test_null_handles_and_handles_of_another_kind_change_nothing);
    CIO_TEST(tc, test_workers_handles_never_share_a_cache_line);
    CIO_TEST(tc, test_workers_update_their_handles_while_another_thread_scrapes);
    CIO_TEST(tc, test_every_allocation_failure_is_enomem_and_leaves_the_set_usable);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
