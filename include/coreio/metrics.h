/*
 * coreio/metrics.h: metrics a service defines for itself, served with the
 * app's own statistics in Prometheus text format (GET /metrics on the admin
 * listener). A service registers a metric on each worker and gets that
 * worker's handle; the handle is updated on that worker's thread only,
 * without a lock or an atomic read-modify-write, and every worker's values
 * are exposed as samples labelled worker="0", worker="1", ...
 *
 * Names follow Prometheus' conventions, and registration enforces the ones
 * that can be checked: a name matches [a-zA-Z_][a-zA-Z0-9_]* (no colon: those
 * are for recording rules) and does not start with "__"; a counter's name
 * ends in "_total" and no other metric's does; no two metrics of a service
 * expose the same series name (a histogram "x" exposes x_bucket, x_sum and
 * x_count); registering a name again (as every worker does) finds the metric
 * only with the same kind, help and histogram bounds. Name the base unit in
 * the name ("_seconds", "_bytes", not milliseconds or kilobytes), before
 * "_total" for counters: "requests_total", "received_bytes_total",
 * "queue_depth", "request_duration_seconds". The exposed name is the
 * service's name, with characters outside [a-zA-Z0-9_] turned into '_', an
 * '_', then the metric's name: "http_hello_requests_total".
 */
#ifndef COREIO_METRICS_H
#define COREIO_METRICS_H

#include "coreio/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * One worker's handle on one metric: a counter, a gauge or a histogram.
 * It lives as long as the service instance that registered it, and only
 * the thread of the worker it belongs to may update it.
 */
typedef struct cio_metric cio_metric_t;

/** Longest metric name, in bytes, without the service's prefix. */
#define CIO_METRIC_NAME_MAX 128

/** Most finite upper bounds a histogram may have (the +Inf bucket is implicit). */
#define CIO_HISTOGRAM_BOUNDS_MAX 32

/** Most metrics one service may register (each counts once, for all workers). */
#define CIO_METRICS_MAX 256

/**
 * Add @p v to counter @p m; counters only go up (wrapping past 2^64 - 1).
 * A NULL @p m does nothing, so a service may ignore a failed registration;
 * so does a handle on a metric of another kind (here and below).
 * The handle's worker thread only.
 */
CIO_EXTERN void cio_counter_add(cio_metric_t *m, uint64_t v);

/** Set gauge @p m to @p v. NULL does nothing. The handle's worker thread only. */
CIO_EXTERN void cio_gauge_set(cio_metric_t *m, double v);

/** Add @p v (negative to subtract) to gauge @p m. NULL does nothing. The handle's worker thread
 * only. */
CIO_EXTERN void cio_gauge_add(cio_metric_t *m, double v);

/**
 * Count @p v in histogram @p m: in the first bucket whose upper bound is at
 * least @p v (bounds are inclusive, as Prometheus' "le"), or in +Inf; @p v
 * is added to the sum. A NaN lands in +Inf and makes the sum NaN. NULL does
 * nothing. The handle's worker thread only.
 */
CIO_EXTERN void cio_histogram_observe(cio_metric_t *m, double v);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_METRICS_H */
