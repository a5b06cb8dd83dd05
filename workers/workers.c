/*
 * workers/workers.c: one event loop per core. Each worker thread runs its own
 * loop, pinned to its core with hwloc (memory bound to that core's NUMA node
 * where the machine allows), with every signal blocked: signals reach loops
 * through add_signal_handler. The workers know each other only through their
 * loops' mailboxes.
 */
#include <errno.h>
#include <hwloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "internal.h"

typedef struct worker {
    struct cio_workers_s *set;
    pthread_t thread;
    cio_loop_t *loop;
    struct cio__mbox_node *stop; /* the stop message's node, taken at creation */
    hwloc_cpuset_t cpuset;       /* NULL when unpinned */
    hwloc_nodeset_t nodeset;
    int core; /* hwloc logical core index, -1 unpinned */
} worker_t;

struct cio_workers_s {
    hwloc_topology_t topo;
    worker_t *w;
    size_t n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t running; /* workers whose loop has started */
    bool pin_failed;
};

/* ---- placement ------------------------------------------------------------------ */

/* The cores in SPREAD order: the k-th core of every package, for k = 0, 1... */
static size_t spread_order(hwloc_topology_t topo, int ncores, unsigned *order)
{
    int npkg = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
    if (npkg <= 1) {
        for (int i = 0; i < ncores; i++)
            order[i] = (unsigned)i;
        return (size_t)ncores;
    }
    size_t k = 0;
    for (int round = 0; k < (size_t)ncores; round++) {
        for (int p = 0; p < npkg; p++) {
            hwloc_obj_t pkg = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PACKAGE, (unsigned)p);
            int in_pkg = hwloc_get_nbobjs_inside_cpuset_by_type(topo, pkg->cpuset, HWLOC_OBJ_CORE);
            if (round >= in_pkg)
                continue;
            hwloc_obj_t c = hwloc_get_obj_inside_cpuset_by_type(topo, pkg->cpuset, HWLOC_OBJ_CORE,
                                                                (unsigned)round);
            order[k++] = c->logical_index;
        }
    }
    return k;
}

/* Choose each worker's core; -EINVAL for a bad explicit list. */
static int place(cio_workers_t *set, const cio_workers_opts_t *o, int ncores)
{
    unsigned *order = calloc((size_t)ncores, sizeof(*order));
    if (!order)
        return -ENOMEM;
    if (o->placement == CIO_PLACE_SPREAD)
        spread_order(set->topo, ncores, order);
    else
        for (int i = 0; i < ncores; i++)
            order[i] = (unsigned)i;
    int rc = 0;
    for (size_t i = 0; i < set->n && rc == 0; i++) {
        unsigned core = o->placement == CIO_PLACE_LIST ? o->cores[i] : order[i % (size_t)ncores];
        if (core >= (unsigned)ncores) {
            rc = -EINVAL;
            break;
        }
        hwloc_obj_t obj = hwloc_get_obj_by_type(set->topo, HWLOC_OBJ_CORE, core);
        set->w[i].cpuset = hwloc_bitmap_dup(obj->cpuset);
        set->w[i].nodeset = hwloc_bitmap_dup(obj->nodeset);
        if (!set->w[i].cpuset || !set->w[i].nodeset)
            rc = -ENOMEM;
        else
            hwloc_bitmap_singlify(set->w[i].cpuset); /* one hardware thread */
        set->w[i].core = (int)core;
    }
    free(order);
    return rc;
}

/* ---- the worker threads ---------------------------------------------------------- */

static int announce_running(void *arg)
{
    worker_t *wk = arg;
    pthread_mutex_lock(&wk->set->mu);
    wk->set->running++;
    pthread_cond_broadcast(&wk->set->cv);
    pthread_mutex_unlock(&wk->set->mu);
    return 0;
}

static void *worker_main(void *arg)
{
    worker_t *wk = arg;
    cio_workers_t *set = wk->set;
    if (wk->cpuset) {
        if (hwloc_set_cpubind(set->topo, wk->cpuset, HWLOC_CPUBIND_THREAD) < 0) {
            pthread_mutex_lock(&set->mu);
            set->pin_failed = true;
            pthread_mutex_unlock(&set->mu);
            wk->core = -1;
        } else {
            /* Best effort: a machine without NUMA refuses, which is fine. */
            hwloc_set_membind(set->topo, wk->nodeset, HWLOC_MEMBIND_BIND, HWLOC_MEMBIND_THREAD);
        }
    }
    cio_loop_call_soon(wk->loop, announce_running, wk, NULL);
    cio_loop_run_forever(wk->loop);
    return NULL;
}

static int stop_cb(void *arg)
{
    cio_loop_stop(arg);
    return 0;
}

/* Stop and free the workers; the stop messages' nodes were taken at creation,
 * so no worker misses its stop for want of memory (and joining never hangs). */
static void destroy(cio_workers_t *set, size_t started)
{
    for (size_t i = 0; i < started; i++) {
        worker_t *wk = &set->w[i];
        if (cio__mailbox_post_reserved(wk->loop, wk->stop, stop_cb, NULL, wk->loop) == 0)
            wk->stop = NULL;
    }
    for (size_t i = 0; i < started; i++)
        pthread_join(set->w[i].thread, NULL);
    for (size_t i = 0; i < set->n; i++) {
        cio__mailbox_node_unreserve(set->w[i].stop);
        cio_loop_free(set->w[i].loop);
        hwloc_bitmap_free(set->w[i].cpuset);
        hwloc_bitmap_free(set->w[i].nodeset);
    }
    hwloc_topology_destroy(set->topo);
    pthread_cond_destroy(&set->cv);
    pthread_mutex_destroy(&set->mu);
    free(set->w);
    free(set);
}

static int start_threads(cio_workers_t *set, size_t *started)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* inherited: blocked in workers */
    int rc = 0;
    for (*started = 0; *started < set->n; (*started)++) {
        if (pthread_create(&set->w[*started].thread, NULL, worker_main, &set->w[*started]) != 0) {
            rc = -EAGAIN;
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&set->mu);
    while (set->running < set->n)
        pthread_cond_wait(&set->cv, &set->mu);
    bool failed = set->pin_failed;
    pthread_mutex_unlock(&set->mu);
    if (failed)
        cio__log(CIO_LOG_WARNING, "workers: this machine does not allow pinning threads to "
                                  "cores; some workers run unpinned");
    return 0;
}

cio_workers_t *cio_workers_new(const cio_workers_opts_t *opts)
{
    cio_workers_opts_t o = opts ? *opts : (cio_workers_opts_t){0};
    cio_workers_t *set = calloc(1, sizeof(*set));
    if (!set)
        return NULL;
    pthread_mutex_init(&set->mu, NULL);
    pthread_cond_init(&set->cv, NULL);
    if (hwloc_topology_init(&set->topo) < 0) {
        free(set);
        return NULL;
    }
    hwloc_topology_load(set->topo);
    int ncores = hwloc_get_nbobjs_by_type(set->topo, HWLOC_OBJ_CORE);
    if (ncores <= 0)
        ncores = 1;
    set->n = o.placement == CIO_PLACE_LIST ? o.ncores : o.count ? o.count : (size_t)ncores;
    size_t started = 0;
    int rc = 0;
    if (set->n == 0 ||
        (o.placement == CIO_PLACE_LIST && (!o.cores || (o.count && o.count != o.ncores))))
        rc = -EINVAL;
    if (rc == 0 && !(set->w = calloc(set->n, sizeof(*set->w))))
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        set->w[i] = (worker_t){
            .set = set, .core = -1, .loop = cio_loop_new(), .stop = cio__mailbox_node_reserve()};
        if (!set->w[i].loop || !set->w[i].stop)
            rc = -ENOMEM;
    }
    if (rc == 0 && o.pin != CIO_OFF)
        rc = place(set, &o, ncores);
    if (rc == 0)
        rc = start_threads(set, &started);
    if (rc < 0) {
        if (!set->w)
            set->n = 0;
        destroy(set, started);
        return NULL;
    }
    return set;
}

size_t cio_workers_count(const cio_workers_t *w)
{
    return w->n;
}

cio_loop_t *cio_workers_loop(const cio_workers_t *w, size_t i)
{
    return i < w->n ? w->w[i].loop : NULL;
}

int cio_workers_core(const cio_workers_t *w, size_t i)
{
    return i < w->n ? w->w[i].core : -1;
}

void cio_workers_free(cio_workers_t *w)
{
    if (w)
        destroy(w, w->n);
}
