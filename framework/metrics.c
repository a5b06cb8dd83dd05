/*
 * framework/metrics.c: metrics that services define, per worker, and their
 * Prometheus text.
 *
 * A metric (a family, in Prometheus' words) has one cell per worker. Each
 * worker's cells are carved from chunks of its own, aligned on CELL_ALIGN
 * and never shared with another worker, so two workers never write the same
 * cache line and one worker's metrics sit densely on few lines. A cell is
 * written by its worker's thread alone, so an update is a relaxed load of
 * the cell's own value and a relaxed store of the new one: no lock, no
 * read-modify-write. The scraping thread reads each value with a relaxed
 * load. That is enough: an 8-byte atomic is never torn, and read-read
 * coherence means a later scrape never sees an older value of a slot than an
 * earlier one did, so counters never go back; a scrape is not a snapshot
 * across slots and needs no ordering between them, and no reader uses a
 * value to reach other memory. Cells are made and published under the set's
 * mutex, which orders their initialisation before any use by a worker (that
 * gets its handle under the mutex) or a scraper (that walks the families
 * under it).
 *
 * A histogram's buckets are counted apart (not cumulatively) and summed at
 * format time; its _count is that sum, so it always equals the +Inf bucket.
 */
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
/* After every header that includes system ones: allocations go through the failure hook. */
#include "../loop/alloc.h"

/* Two cache lines: Intel's adjacent-line prefetcher fetches lines in pairs. */
#define CELL_ALIGN 128
#define CHUNK_SIZE 4096 /* a worker's cells are carved from chunks of this size */

_Static_assert(__atomic_always_lock_free(sizeof(double), 0) &&
                   __atomic_always_lock_free(sizeof(uint64_t), 0),
               "metric updates must be plain stores");

typedef enum kind { COUNTER, GAUGE, HISTOGRAM } kind_t;

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

/* One worker's cell of one metric. */
struct cio_metric {
    kind_t kind;
    unsigned nbounds;     /* histograms: finite upper bounds */
    const double *bounds; /* histograms: their copy, at the end of this cell */
    union {
        _Atomic uint64_t total; /* a counter's */
        _Atomic double value;   /* a gauge's; a histogram's sum */
    };
    _Atomic uint64_t counts[]; /* histograms: per bucket, not cumulative, +Inf last */
};

/* Cells of one worker. The header shares no line with cells: only
 * registration, under the set's mutex, touches it. */
typedef struct chunk {
    struct chunk *next; /* the worker's older, fuller chunks */
    size_t used;        /* bytes of data carved */
    alignas(CELL_ALIGN) unsigned char data[CHUNK_SIZE - CELL_ALIGN];
} chunk_t;

_Static_assert(sizeof(chunk_t) == CHUNK_SIZE, "a chunk is whole lines");

/* One metric, all workers; immutable once published. */
typedef struct family {
    kind_t kind;
    unsigned nbounds;
    const char *full;      /* prefix and name, as exposed */
    const char *name;      /* as registered: the end of full */
    const char *help;      /* NULL: none */
    cio_metric_t *cells[]; /* one per worker, then the strings */
} family_t;

struct cio__metrics {
    pthread_mutex_t mu; /* registration and formatting; never the updates */
    size_t nworkers;
    chunk_t **chunks; /* per worker: the chunk cells are carved from */
    size_t nfams;
    family_t *fams[CIO_METRICS_MAX]; /* in registration order */
    char prefix[];                   /* "service_", or "" */
};

/* ---- updates: the worker's thread, lock-free (see the top of the file) --------- */

void cio_counter_add(cio_metric_t *m, uint64_t v)
{
    if (!m || m->kind != COUNTER)
        return;
    uint64_t old = atomic_load_explicit(&m->total, memory_order_relaxed);
    atomic_store_explicit(&m->total, old + v, memory_order_relaxed);
}

void cio_gauge_set(cio_metric_t *m, double v)
{
    if (!m || m->kind != GAUGE)
        return;
    atomic_store_explicit(&m->value, v, memory_order_relaxed);
}

void cio_gauge_add(cio_metric_t *m, double v)
{
    if (!m || m->kind != GAUGE)
        return;
    double old = atomic_load_explicit(&m->value, memory_order_relaxed);
    atomic_store_explicit(&m->value, old + v, memory_order_relaxed);
}

/* Binary search for the first bound at least @p v; written as "not v <= b"
 * so that a NaN, which compares false, goes all the way to +Inf. */
void cio_histogram_observe(cio_metric_t *m, double v)
{
    if (!m || m->kind != HISTOGRAM)
        return;
    unsigned lo = 0, hi = m->nbounds;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (!(v <= m->bounds[mid]))
            lo = mid + 1;
        else
            hi = mid;
    }
    uint64_t n = atomic_load_explicit(&m->counts[lo], memory_order_relaxed);
    atomic_store_explicit(&m->counts[lo], n + 1, memory_order_relaxed);
    double sum = atomic_load_explicit(&m->value, memory_order_relaxed);
    atomic_store_explicit(&m->value, sum + v, memory_order_relaxed);
}

/* ---- the set ------------------------------------------------------------------- */

static bool is_name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

cio__metrics_t *cio__metrics_new(const char *prefix, size_t nworkers)
{
    size_t plen = prefix ? strlen(prefix) : 0;
    if (nworkers == 0)
        return NULL;
    /* Room for a leading '_', the separating '_' and the NUL. */
    cio__metrics_t *set = calloc(1, sizeof(*set) + plen + 3);
    if (!set)
        return NULL;
    set->chunks = calloc(nworkers, sizeof(*set->chunks));
    if (!set->chunks) {
        free(set);
        return NULL;
    }
    set->nworkers = nworkers;
    pthread_mutex_init(&set->mu, NULL);
    char *p = set->prefix;
    if (plen > 0 && prefix[0] >= '0' && prefix[0] <= '9')
        *p++ = '_'; /* a digit cannot start a name */
    for (size_t i = 0; i < plen; i++)
        *p++ = is_name_char(prefix[i], false) ? prefix[i] : '_';
    if (plen > 0)
        *p++ = '_';
    *p = '\0';
    return set;
}

void cio__metrics_free(cio__metrics_t *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->nfams; i++)
        free(set->fams[i]);
    for (size_t w = 0; w < set->nworkers; w++)
        for (chunk_t *c = set->chunks[w], *next; c; c = next) {
            next = c->next;
            free(c);
        }
    free(set->chunks);
    pthread_mutex_destroy(&set->mu);
    free(set);
}

/* ---- registration -------------------------------------------------------------- */

/* Prometheus' name syntax without the colon (kept for recording rules), not
 * "__" (reserved), and "_total" for counters and for counters only. */
static int check_name(kind_t kind, const char *name)
{
    size_t len = name ? strnlen(name, CIO_METRIC_NAME_MAX + 1) : 0;
    if (len == 0 || len > CIO_METRIC_NAME_MAX || strncmp(name, "__", 2) == 0)
        return -EINVAL;
    for (size_t i = 0; i < len; i++)
        if (!is_name_char(name[i], i == 0))
            return -EINVAL;
    bool total = len >= 6 && strcmp(name + len - 6, "_total") == 0;
    return total == (kind == COUNTER) ? 0 : -EINVAL;
}

static int check_bounds(const double *bounds, size_t nbounds)
{
    if (nbounds > CIO_HISTOGRAM_BOUNDS_MAX || (nbounds > 0 && !bounds))
        return -EINVAL;
    for (size_t i = 0; i < nbounds; i++)
        if (!__builtin_isfinite(bounds[i]) || (i > 0 && !(bounds[i - 1] < bounds[i])))
            return -EINVAL;
    return 0;
}

/* Whether metrics @p a and @p b, of kinds @p ka and @p kb, expose a series of
 * the same name (a histogram "x" exposes x, x_bucket, x_sum and x_count). */
static bool series_clash(kind_t ka, const char *a, kind_t kb, const char *b)
{
    static const char *const suffix[] = {"", "_bucket", "_sum", "_count"};
    char sa[CIO_METRIC_NAME_MAX + 8], sb[CIO_METRIC_NAME_MAX + 8];
    for (size_t i = 0; i < (ka == HISTOGRAM ? 4u : 1u); i++)
        for (size_t j = 0; j < (kb == HISTOGRAM ? 4u : 1u); j++) {
            snprintf(sa, sizeof(sa), "%s%s", a, suffix[i]);
            snprintf(sb, sizeof(sb), "%s%s", b, suffix[j]);
            if (strcmp(sa, sb) == 0)
                return true;
        }
    return false;
}

/* The registered metric called @p name, if it is the same one (in *@p out, or
 * NULL when there is none); -EEXIST if the name or a series name is taken. */
static int find(cio__metrics_t *set, kind_t kind, const char *name, const char *help,
                const double *bounds, size_t nbounds, family_t **out)
{
    *out = NULL;
    for (size_t i = 0; i < set->nfams; i++) {
        family_t *f = set->fams[i];
        if (strcmp(f->name, name) != 0) {
            if (series_clash(f->kind, f->name, kind, name))
                return -EEXIST;
            continue;
        }
        if (f->kind != kind || f->nbounds != nbounds ||
            strcmp(f->help ? f->help : "", help ? help : "") != 0)
            return -EEXIST;
        for (size_t b = 0; b < nbounds; b++)
            if (f->cells[0]->bounds[b] != bounds[b])
                return -EEXIST;
        *out = f;
        return 0;
    }
    return 0;
}

static size_t cell_size(kind_t kind, size_t nbounds)
{
    if (kind != HISTOGRAM)
        return sizeof(cio_metric_t);
    return sizeof(cio_metric_t) + (nbounds + 1) * sizeof(uint64_t) + nbounds * sizeof(double);
}

/* Make sure every worker's chunk has @p size bytes free. New chunks stay
 * (the set frees them) even if a later one fails: they are used next time. */
static int reserve(cio__metrics_t *set, size_t size)
{
    for (size_t w = 0; w < set->nworkers; w++) {
        chunk_t *c = set->chunks[w];
        if (c && c->used + size <= sizeof(c->data))
            continue;
        c = aligned_alloc(CELL_ALIGN, sizeof(*c));
        if (!c)
            return -ENOMEM;
        c->next = set->chunks[w];
        c->used = 0;
        set->chunks[w] = c;
    }
    return 0;
}

/* Worker @p w's cell for a new metric; reserve() made room. */
static cio_metric_t *carve(cio__metrics_t *set, size_t w, kind_t kind, const double *bounds,
                           size_t nbounds)
{
    chunk_t *c = set->chunks[w];
    cio_metric_t *m = (cio_metric_t *)(c->data + c->used);
    c->used += cell_size(kind, nbounds);
    m->kind = kind;
    m->nbounds = (unsigned)nbounds;
    m->bounds = NULL;
    if (kind == COUNTER)
        atomic_init(&m->total, 0);
    else
        atomic_init(&m->value, 0.0);
    if (kind == HISTOGRAM) {
        double *copy = (double *)&m->counts[nbounds + 1];
        for (size_t i = 0; i <= nbounds; i++)
            atomic_init(&m->counts[i], 0);
        for (size_t i = 0; i < nbounds; i++)
            copy[i] = bounds[i];
        m->bounds = copy;
    }
    return m;
}

/* A new metric with a cell on every worker, all allocated before it is
 * published, so a failure leaves the set as it was. */
static int add(cio__metrics_t *set, kind_t kind, const char *name, const char *help,
               const double *bounds, size_t nbounds, family_t **out)
{
    if (set->nfams == CIO_METRICS_MAX)
        return -ENOSPC;
    if (help && !*help)
        help = NULL;
    size_t cells = set->nworkers * sizeof(cio_metric_t *), plen = strlen(set->prefix);
    size_t nlen = strlen(name), hlen = help ? strlen(help) + 1 : 0;
    family_t *f = malloc(sizeof(*f) + cells + plen + nlen + 1 + hlen);
    if (!f)
        return -ENOMEM;
    int rc = reserve(set, cell_size(kind, nbounds));
    if (rc < 0) {
        free(f);
        return rc;
    }
    char *full = (char *)f->cells + cells;
    memcpy(full, set->prefix, plen);
    memcpy(full + plen, name, nlen + 1);
    f->kind = kind;
    f->nbounds = (unsigned)nbounds;
    f->full = full;
    f->name = full + plen;
    f->help = help ? memcpy(full + plen + nlen + 1, help, hlen) : NULL;
    for (size_t w = 0; w < set->nworkers; w++)
        f->cells[w] = carve(set, w, kind, bounds, nbounds);
    set->fams[set->nfams++] = f;
    *out = f;
    return 0;
}

static cio_metric_t *metric(cio__metrics_t *set, size_t worker, kind_t kind, const char *name,
                            const char *help, const double *bounds, size_t nbounds, int *err)
{
    int rc = set && worker < set->nworkers ? check_name(kind, name) : -EINVAL;
    if (rc == 0)
        rc = check_bounds(bounds, nbounds);
    cio_metric_t *m = NULL;
    if (rc == 0) {
        family_t *f;
        pthread_mutex_lock(&set->mu);
        rc = find(set, kind, name, help, bounds, nbounds, &f);
        if (rc == 0 && !f)
            rc = add(set, kind, name, help, bounds, nbounds, &f);
        if (rc == 0)
            m = f->cells[worker];
        pthread_mutex_unlock(&set->mu);
    }
    if (err)
        *err = rc;
    return m;
}

cio_metric_t *cio__metrics_counter(cio__metrics_t *set, size_t worker, const char *name,
                                   const char *help, int *err)
{
    return metric(set, worker, COUNTER, name, help, NULL, 0, err);
}

cio_metric_t *cio__metrics_gauge(cio__metrics_t *set, size_t worker, const char *name,
                                 const char *help, int *err)
{
    return metric(set, worker, GAUGE, name, help, NULL, 0, err);
}

cio_metric_t *cio__metrics_histogram(cio__metrics_t *set, size_t worker, const char *name,
                                     const char *help, const double *bounds, size_t nbounds,
                                     int *err)
{
    return metric(set, worker, HISTOGRAM, name, help, bounds, nbounds, err);
}

/* ---- the Prometheus text ------------------------------------------------------- */

/* @p v as the format's floats: the shortest of 15, 16 or 17 significant
 * digits that reads back exactly, or "+Inf", "-Inf", "NaN". */
static const char *float_text(char buf[32], double v)
{
    if (__builtin_isnan(v))
        return "NaN";
    if (__builtin_isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, 32, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

/* HELP text escapes backslash and newline, and nothing else. */
static void write_help(FILE *out, const family_t *f)
{
    if (!f->help)
        return;
    fprintf(out, "# HELP %s ", f->full);
    for (const char *c = f->help; *c; c++) {
        if (*c == '\\')
            fputs("\\\\", out);
        else if (*c == '\n')
            fputs("\\n", out);
        else
            fputc(*c, out);
    }
    fputc('\n', out);
}

static void write_histogram(FILE *out, const family_t *f, size_t w)
{
    const cio_metric_t *m = f->cells[w];
    uint64_t cumulative = 0;
    char num[32];
    for (unsigned i = 0; i <= m->nbounds; i++) {
        cumulative += atomic_load_explicit(&m->counts[i], memory_order_relaxed);
        fprintf(out, "%s_bucket{worker=\"%zu\",le=\"%s\"} %llu\n", f->full, w,
                i < m->nbounds ? float_text(num, m->bounds[i]) : "+Inf",
                (unsigned long long)cumulative);
    }
    fprintf(out, "%s_sum{worker=\"%zu\"} %s\n", f->full, w,
            float_text(num, atomic_load_explicit(&m->value, memory_order_relaxed)));
    fprintf(out, "%s_count{worker=\"%zu\"} %llu\n", f->full, w, (unsigned long long)cumulative);
}

static void write_family(FILE *out, const family_t *f, size_t nworkers)
{
    char num[32];
    write_help(out, f);
    fprintf(out, "# TYPE %s %s\n", f->full, kind_names[f->kind]);
    for (size_t w = 0; w < nworkers; w++) {
        const cio_metric_t *m = f->cells[w];
        if (f->kind == COUNTER)
            fprintf(out, "%s{worker=\"%zu\"} %llu\n", f->full, w,
                    (unsigned long long)atomic_load_explicit(&m->total, memory_order_relaxed));
        else if (f->kind == GAUGE)
            fprintf(out, "%s{worker=\"%zu\"} %s\n", f->full, w,
                    float_text(num, atomic_load_explicit(&m->value, memory_order_relaxed)));
        else
            write_histogram(out, f, w);
    }
}

int cio__metrics_format(cio__metrics_t *set, FILE *out)
{
    pthread_mutex_lock(&set->mu);
    for (size_t i = 0; i < set->nfams; i++)
        write_family(out, set->fams[i], set->nworkers);
    pthread_mutex_unlock(&set->mu);
    return ferror(out) ? -EIO : 0;
}
