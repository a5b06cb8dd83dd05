/*
 * framework/metrics.h: the registry of the metrics one service instance
 * defines (coreio/metrics.h), for every worker, and their Prometheus text.
 * The app makes one set per service instance, hands each worker's handles
 * to the service through its context, and appends every set's text to the
 * statistics of stats.c.
 *
 * These functions are exported (CIO_EXTERN) for tests/test_metrics.c only;
 * they are not part of the public API.
 */
#ifndef CIO_FRAMEWORK_METRICS_H
#define CIO_FRAMEWORK_METRICS_H

#include <stdio.h>

#include "coreio/metrics.h"

/** The metrics of one service instance, all workers. */
typedef struct cio__metrics cio__metrics_t;

/**
 * A set for @p nworkers workers whose metrics are named @p prefix (the
 * service's name; NULL or "" for none), '_', then the metric's name. The
 * prefix's characters outside [a-zA-Z0-9_] become '_', and one starting with
 * a digit gets a leading '_'. NULL when out of memory or @p nworkers is 0.
 * Any thread.
 */
CIO_EXTERN cio__metrics_t *cio__metrics_new(const char *prefix, size_t nworkers);

/**
 * Register the counter @p name, or find it when it was registered before with
 * the same help (by this worker or another), and return worker @p worker's
 * handle on it. @p help (NULL or "": no HELP line) is copied. On failure NULL,
 * with the reason in *@p err (if not NULL; 0 on success): -EINVAL for a bad
 * name (see coreio/metrics.h: a counter's ends in "_total") or a @p worker out
 * of range; -EEXIST when the name is taken by another kind or another help,
 * or a series name clashes with another metric's; -ENOSPC past
 * CIO_METRICS_MAX metrics; -ENOMEM. Any thread, concurrently with every
 * other function but cio__metrics_free().
 */
CIO_EXTERN cio_metric_t *cio__metrics_counter(cio__metrics_t *set, size_t worker, const char *name,
                                              const char *help, int *err);

/** As cio__metrics_counter(), for a gauge (whose name does not end in "_total"). */
CIO_EXTERN cio_metric_t *cio__metrics_gauge(cio__metrics_t *set, size_t worker, const char *name,
                                            const char *help, int *err);

/**
 * As cio__metrics_counter(), for a histogram with the @p nbounds upper bounds
 * @p bounds (copied): finite, strictly increasing, at most
 * CIO_HISTOGRAM_BOUNDS_MAX, +Inf implicit (-EINVAL otherwise). Registering it
 * again finds it only with the same bounds (-EEXIST otherwise).
 */
CIO_EXTERN cio_metric_t *cio__metrics_histogram(cio__metrics_t *set, size_t worker,
                                                const char *name, const char *help,
                                                const double *bounds, size_t nbounds, int *err);

/**
 * Write the Prometheus text exposition (format 0.0.4) of every metric of @p
 * set to @p out, in registration order: # HELP and # TYPE once per metric,
 * then one sample per worker labelled worker="i"; a histogram's as cumulative
 * _bucket{worker="i",le="..."} samples, _sum and _count. @p out is
 * typically stats.c's open_memstream. 0, or -EIO if @p out reports an error.
 * Any thread; it takes the set's lock (not the workers': they never wait).
 */
CIO_EXTERN int cio__metrics_format(cio__metrics_t *set, FILE *out);

/** Release @p set and every handle on it (NULL: nothing). No other call may be in progress. */
CIO_EXTERN void cio__metrics_free(cio__metrics_t *set);

#endif /* CIO_FRAMEWORK_METRICS_H */
