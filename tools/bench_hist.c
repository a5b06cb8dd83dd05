/*
 * tools/bench_hist.c: the log-linear latency histogram (see bench_hist.h).
 * Bucket 0 counts the values 0..2047 one by one; bucket b >= 1 counts
 * 1024 << b .. (2048 << b) - 1 in 1024 sub-buckets of width 1 << b. The
 * counter of value v sits at (b << 10) + (v >> b), which packs the buckets
 * end to end: bucket b >= 1 starts at index (b + 1) << 10.
 */
#include "bench_hist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SUB_BITS      11 /* 2048 sub-buckets: 3 significant digits */
#define SUB_COUNT     (1u << SUB_BITS)
#define SUB_HALF_BITS (SUB_BITS - 1) /* buckets past 0 use their upper half only */
#define SUB_HALF      (1u << SUB_HALF_BITS)

/* The bucket of @p v: how many bits it has beyond SUB_BITS. */
static unsigned bucket_of(uint64_t v)
{
    return (unsigned)(64 - __builtin_clzll(v | (SUB_COUNT - 1))) - SUB_BITS;
}

static size_t index_of(uint64_t v)
{
    unsigned b = bucket_of(v);
    return ((size_t)b << SUB_HALF_BITS) + (size_t)(v >> b);
}

/* The highest value counted at @p index. */
static uint64_t highest_at(size_t index)
{
    if (index < SUB_COUNT)
        return index;
    unsigned b = (unsigned)(index >> SUB_HALF_BITS) - 1;
    uint64_t sub = (index & (SUB_HALF - 1)) + SUB_HALF;
    return (sub << b) + ((uint64_t)1 << b) - 1;
}

int bench_hist_init(bench_hist_t *h, uint64_t highest)
{
    memset(h, 0, sizeof(*h));
    h->highest = highest < SUB_COUNT ? SUB_COUNT : highest;
    h->len = index_of(h->highest) + 1;
    h->counts = calloc(h->len, sizeof(*h->counts));
    if (!h->counts)
        return -ENOMEM;
    h->min = UINT64_MAX;
    return 0;
}

void bench_hist_free(bench_hist_t *h)
{
    free(h->counts);
    h->counts = NULL;
    h->len = 0;
}

void bench_hist_reset(bench_hist_t *h)
{
    memset(h->counts, 0, h->len * sizeof(*h->counts));
    h->total = h->max = 0;
    h->min = UINT64_MAX;
}

void bench_hist_record(bench_hist_t *h, uint64_t value)
{
    if (value > h->highest)
        value = h->highest;
    h->counts[index_of(value)]++;
    h->total++;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
}

void bench_hist_merge(bench_hist_t *dst, const bench_hist_t *src)
{
    size_t n = src->len < dst->len ? src->len : dst->len;
    for (size_t i = 0; i < n; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t bench_hist_percentile(const bench_hist_t *h, double percentile)
{
    if (h->total == 0)
        return 0;
    if (percentile > 100.0)
        percentile = 100.0;
    /* The rank of the value wanted, 1-based, rounded up as HdrHistogram does. */
    double exact = percentile / 100.0 * (double)h->total;
    uint64_t rank = (uint64_t)exact;
    if ((double)rank < exact)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < h->len; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = highest_at(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}
