/*
 * framework/health.c: what an app answers to a load balancer's checks. It is
 * serving, draining (cio_app_drain(): the checks fail so that the balancer
 * moves the traffic away, while the listeners accept and the connections go
 * on) or stopping. The admin listener's GET /health (stats.c) and the
 * agent-check listener (agent.c) read the state here; the agent also offers
 * a load weight made from the workers' loop lag.
 *
 * The weight is 100% while the worst worker's lag is at most WEIGHT_FULL_LAG
 * and falls linearly to WEIGHT_MIN at WEIGHT_MIN_LAG and beyond: a loop that
 * runs its timers late is busy, and a balancer that weighs servers by it
 * sends fewer new connections there. It never reaches 0%, which HAProxy reads
 * as drain: only cio_app_drain() drains.
 */
#include "internal.h"

/* The ticker's own jitter: libevent's coarse clock adds up to 4 ms (stats.c). */
#define WEIGHT_FULL_LAG 0.005 /* seconds */
#define WEIGHT_MIN_LAG  0.100 /* seconds */
#define WEIGHT_MIN      10    /* percent */

void cio_app_drain(cio_app_t *app, bool on)
{
    if (atomic_exchange(&app->draining, on) == on)
        return;
    cio__log(CIO_LOG_INFO, "%s: %s", app->opts.name ? app->opts.name : "app",
             on ? "draining: health checks fail from now on" : "serving again");
}

bool cio_app_draining(const cio_app_t *app)
{
    return atomic_load(&app->draining);
}

cio__health_t cio__health(const cio_app_t *app)
{
    if (atomic_load(&app->stop_requested))
        return CIO__HEALTH_STOPPING;
    return atomic_load(&app->draining) ? CIO__HEALTH_DRAINING : CIO__HEALTH_SERVING;
}

const char *cio__health_word(cio__health_t h)
{
    static const char *const words[] = {"serving", "draining", "stopping"};
    return words[h];
}

/* Tests only (exported): the weight of a worst loop lag of @p lag seconds. Any thread. */
CIO_EXTERN unsigned cio__health_weight_of_lag(double lag);

unsigned cio__health_weight_of_lag(double lag)
{
    if (!(lag > WEIGHT_FULL_LAG)) /* NaN too: no measure is no reason to shed load */
        return 100;
    if (lag >= WEIGHT_MIN_LAG)
        return WEIGHT_MIN;
    double fall = (lag - WEIGHT_FULL_LAG) / (WEIGHT_MIN_LAG - WEIGHT_FULL_LAG);
    return (unsigned)(100.0 - fall * (100.0 - WEIGHT_MIN) + 0.5); /* rounded: no libm */
}

unsigned cio__health_weight(cio_app_t *app)
{
    double worst = 0;
    for (size_t i = 0; app->wstats && i < app->nworkers; i++) {
        pthread_mutex_lock(&app->wstats[i].mu);
        if (app->wstats[i].lag > worst)
            worst = app->wstats[i].lag;
        pthread_mutex_unlock(&app->wstats[i].mu);
    }
    return cio__health_weight_of_lag(worst);
}
