/*
 * bench/benchutil.h: what the micro-benchmark programs share: the clocks, the
 * --scale factor and the median of REPEAT runs. Each program prints
 * "coreio<TAB>metric<TAB>value<TAB>unit" lines, medians of REPEAT runs.
 */
#ifndef CIO_BENCHUTIL_H
#define CIO_BENCHUTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#define REPEAT 5

/* --scale: multiplies every iteration count (0.1 for a quick look). */
static double scale = 1.0;

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* User + system CPU time of the whole process (every thread), in ns. */
static inline uint64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
           ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of REPEAT values (sorts @p v). */
static inline double median(double *v)
{
    qsort(v, REPEAT, sizeof(*v), cmp_double);
    return v[REPEAT / 2];
}

/* @p n times the scale, at least 1. */
static inline long scaled(long n)
{
    long v = (long)((double)n * scale);
    return v > 0 ? v : 1;
}

#endif /* CIO_BENCHUTIL_H */
