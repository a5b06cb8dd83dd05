/*
 * loop/resolver.c: getaddrinfo and getnameinfo off the loop thread. A small
 * process-wide pool of threads, apart from any user executor so slow DNS
 * cannot starve user jobs, runs the blocking calls; each answer goes back to
 * its loop through the mailbox and settles the future there. A closing loop
 * drops its queued jobs and waits for the ones in flight, so no answer is ever
 * posted to a loop that is gone.
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define RESOLVER_THREADS 2

typedef struct job {
    struct job *next;
    cio_loop_t *loop;
    cio_future_t *fut; /* referenced; touched on the loop thread only */
    bool reverse;      /* getnameinfo instead of getaddrinfo */
    char *host, *port;
    struct addrinfo hints;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int ni_flags;
    /* Outcome, written by the worker. */
    int gai_err;
    int sys_err;
    struct addrinfo *res;
    cio_nameinfo_t *names;
} job_t;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work; /* jobs queued */
    pthread_cond_t idle; /* a job finished */
    job_t *head, *tail;
    job_t *running[RESOLVER_THREADS];
    int nthreads;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
          .work = PTHREAD_COND_INITIALIZER,
          .idle = PTHREAD_COND_INITIALIZER};

static void job_free(job_t *j)
{
    if (j->res)
        freeaddrinfo(j->res);
    free(j->names);
    free(j->host);
    free(j->port);
    free(j);
}

/* getaddrinfo's errors as coreio errors: EAI_* codes map to errno values. */
static int resolver_error(int gai, int sys)
{
    switch (gai) {
    case 0:
        return 0;
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_FAMILY:
    case EAI_SOCKTYPE:
    case EAI_SERVICE:
    case EAI_BADFLAGS:
        return -EINVAL;
    case EAI_SYSTEM:
        return sys ? -sys : -EIO;
    default:
        return -EIO;
    }
}

/* On the loop thread: settle the future with the answer. */
static int job_complete(void *arg)
{
    job_t *j = arg;
    cio_future_t *fut = j->fut;
    if (!cio_future_done(fut)) {
        int err = resolver_error(j->gai_err, j->sys_err);
        if (err < 0) {
            cio_future_set_error(fut, err, gai_strerror(j->gai_err));
        } else if (j->reverse) {
            cio__future_set_owned_result(fut, j->names, free);
            j->names = NULL;
        } else {
            cio__future_set_owned_result(fut, j->res, (void (*)(void *))freeaddrinfo);
            j->res = NULL;
        }
    }
    cio_future_unref(fut);
    job_free(j);
    return 0;
}

/* On the loop thread, when the loop closes before the answer ran. */
static int job_release(void *arg)
{
    job_t *j = arg;
    cio_future_unref(j->fut);
    job_free(j);
    return 0;
}

static void run_job(job_t *j)
{
    if (j->reverse) {
        j->names = calloc(1, sizeof(*j->names));
        if (!j->names) {
            j->gai_err = EAI_MEMORY;
            return;
        }
        j->gai_err = getnameinfo((struct sockaddr *)&j->addr, j->addrlen, j->names->host,
                                 sizeof(j->names->host), j->names->service,
                                 sizeof(j->names->service), j->ni_flags);
    } else {
        j->gai_err = getaddrinfo(j->host, j->port, &j->hints, &j->res);
    }
    j->sys_err = errno;
}

static void *worker(void *arg)
{
    int slot = (int)(intptr_t)arg;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (!pool.head)
            pthread_cond_wait(&pool.work, &pool.mu);
        job_t *j = pool.head;
        pool.head = j->next;
        if (!pool.head)
            pool.tail = NULL;
        pool.running[slot] = j;
        pthread_mutex_unlock(&pool.mu);
        run_job(j);
        pthread_mutex_lock(&pool.mu);
        /* Posted under the lock: a closing loop waits for it, then drains it. */
        if (cio__call_soon_threadsafe_owned(j->loop, job_complete, job_release, j) < 0)
            job_free(j); /* cannot happen while the loop waits; never leak */
        pool.running[slot] = NULL;
        pthread_cond_broadcast(&pool.idle);
    }
    return NULL;
}

/* Start the threads on first use, with every signal blocked in them. */
static int ensure_threads(void)
{
    if (pool.nthreads == RESOLVER_THREADS)
        return 0;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = 0;
    while (pool.nthreads < RESOLVER_THREADS) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker, (void *)(intptr_t)pool.nthreads) != 0) {
            rc = pool.nthreads ? 0 : -EAGAIN;
            break;
        }
        pthread_detach(t);
        pool.nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static cio_future_t *submit(cio_loop_t *loop, job_t *j)
{
    cio_future_t *fut = cio_loop_create_future(loop);
    if (!fut) {
        job_free(j);
        return NULL;
    }
    j->loop = loop;
    j->fut = cio_future_ref(fut);
    pthread_mutex_lock(&pool.mu);
    int rc = ensure_threads();
    if (rc == 0) {
        if (pool.tail)
            pool.tail->next = j;
        else
            pool.head = j;
        pool.tail = j;
        pthread_cond_signal(&pool.work);
    }
    pthread_mutex_unlock(&pool.mu);
    if (rc < 0) {
        cio_future_set_error(fut, rc, "cannot start the resolver threads");
        job_release(j);
    }
    return fut;
}

cio_future_t *cio_loop_getaddrinfo(cio_loop_t *loop, const char *host, const char *port,
                                   const struct addrinfo *hints)
{
    if (!loop || (!host && !port) || atomic_load(&loop->closed))
        return NULL;
    job_t *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    if (hints)
        j->hints = *hints;
    j->hints.ai_addr = NULL;
    j->hints.ai_canonname = NULL;
    j->hints.ai_next = NULL;
    if ((host && !(j->host = strdup(host))) || (port && !(j->port = strdup(port)))) {
        job_free(j);
        return NULL;
    }
    return submit(loop, j);
}

cio_future_t *cio_loop_getnameinfo(cio_loop_t *loop, const struct sockaddr *addr, socklen_t addrlen,
                                   int flags)
{
    if (!loop || !addr || addrlen == 0 || addrlen > sizeof(struct sockaddr_storage) ||
        atomic_load(&loop->closed))
        return NULL;
    job_t *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->reverse = true;
    memcpy(&j->addr, addr, addrlen);
    j->addrlen = addrlen;
    j->ni_flags = flags;
    return submit(loop, j);
}

/* The loop is closing: drop its queued jobs, wait out the running ones. */
void cio__resolver_forget_loop(cio_loop_t *loop)
{
    pthread_mutex_lock(&pool.mu);
    job_t **pp = &pool.head;
    pool.tail = NULL;
    while (*pp) {
        job_t *j = *pp;
        if (j->loop == loop) {
            *pp = j->next;
            job_release(j);
        } else {
            pool.tail = j;
            pp = &j->next;
        }
    }
    for (;;) {
        bool busy = false;
        for (int i = 0; i < RESOLVER_THREADS; i++)
            busy |= pool.running[i] && pool.running[i]->loop == loop;
        if (!busy)
            break;
        pthread_cond_wait(&pool.idle, &pool.mu);
    }
    pthread_mutex_unlock(&pool.mu);
}

/*
 * Inside a task: resolve as getaddrinfo(3) into *@p res (free it with
 * freeaddrinfo). Numeric hosts and ports are converted at once, as asyncio's
 * _ipaddr_info does; anything else goes to the resolver threads.
 */
int cio__resolve(cio_loop_t *loop, const char *host, const char *port, const struct addrinfo *hints,
                 struct addrinfo **res)
{
    struct addrinfo numeric = *hints;
    numeric.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
    int gai = getaddrinfo(host, port, &numeric, res);
    if (gai != EAI_NONAME)
        return resolver_error(gai, errno);
    cio_future_t *fut = cio_loop_getaddrinfo(loop, host, port, hints);
    if (!fut)
        return -ENOMEM;
    int rc = cio_await(fut, NULL);
    if (rc == 0)
        *res = cio__future_take_result(fut);
    cio_future_unref(fut);
    return rc;
}
