/*
 * tools/bench_hist.h: the latency histogram of coreio-bench. A log-linear
 * histogram in the manner of HdrHistogram: values (nanoseconds) below 2048
 * are counted exactly, and every power-of-two range above is split into 1024
 * equal sub-buckets, so any recorded value is known to 3 significant digits.
 * Recording costs no allocation; histograms of several threads are merged
 * by adding their counts.
 */
#ifndef COREIO_BENCH_HIST_H
#define COREIO_BENCH_HIST_H

#include <stddef.h>
#include <stdint.h>

/** One histogram, owned by one thread until it is merged. */
typedef struct bench_hist {
    uint64_t *counts; /* one counter per sub-bucket */
    size_t len;       /* number of counters */
    uint64_t highest; /* largest trackable value; larger ones are clamped to it */
    uint64_t total;   /* values recorded */
    uint64_t min, max;
} bench_hist_t;

/**
 * Set up @p h to track values from 1 to @p highest. Returns 0 or -ENOMEM.
 * Free with bench_hist_free().
 */
int bench_hist_init(bench_hist_t *h, uint64_t highest);

/** Free the counters of @p h (which may be zeroed or already freed). */
void bench_hist_free(bench_hist_t *h);

/** Forget every recorded value, keeping the counters' memory. */
void bench_hist_reset(bench_hist_t *h);

/** Count one value; values above the highest trackable one count as it. */
void bench_hist_record(bench_hist_t *h, uint64_t value);

/** Add the counts of @p src to @p dst; both must track the same range. */
void bench_hist_merge(bench_hist_t *dst, const bench_hist_t *src);

/**
 * The value at @p percentile (0 to 100): the highest value equivalent to the
 * smallest recorded value that at least that share of the values does not
 * exceed, never more than the maximum recorded. 0 for an empty histogram.
 */
uint64_t bench_hist_percentile(const bench_hist_t *h, double percentile);

#endif /* COREIO_BENCH_HIST_H */
