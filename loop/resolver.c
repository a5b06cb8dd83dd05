/*
 * loop/resolver.c: getaddrinfo and getnameinfo off the loop thread. The
 * blocking calls run on a private executor (loop/executor.c's pool code), a
 * process-wide pool of RESOLVER_THREADS threads made on first use and apart
 * from every user executor, so slow DNS cannot starve user jobs. Each answer
 * goes back to its loop through the mailbox and settles the future there; the
 * future owns it. Failures are coreio's CIO_EAI_* codes with gai_strerror's
 * message, as asyncio's socket.gaierror.
 *
 * Closing a loop with lookups in flight follows the executor's one rule: the
 * loop orphans them. A lookup not started never runs; a running one still runs
 * to its end on its thread, its answer is freed there by its destructor
 * instead of being posted to the closed loop, and its future is cancelled.
 * Closing never waits for DNS.
 */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define RESOLVER_THREADS 2

/* One lookup: what the pool thread needs, owned by the job. */
typedef struct lookup {
    char *host, *port;
    struct addrinfo hints;
    struct sockaddr_storage addr; /* getnameinfo's address */
    socklen_t addrlen;
    int ni_flags;
} lookup_t;

static void lookup_free(void *arg)
{
    lookup_t *l = arg;
    free(l->host);
    free(l->port);
    free(l);
}

static void addrinfo_free(void *res)
{
    freeaddrinfo(res);
}

/* getaddrinfo's and getnameinfo's failures as coreio errors (see coreio/error.h). */
static int lookup_error(int gai, int sys)
{
    switch (gai) {
    case 0:
        return 0;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return sys > 0 ? -sys : -EIO;
#define GAI_CASE(name)                                                                             \
    case EAI_##name:                                                                               \
        return CIO_EAI_##name;
        GAI_CASE(BADFLAGS)
        GAI_CASE(NONAME)
        GAI_CASE(AGAIN)
        GAI_CASE(FAIL)
        GAI_CASE(FAMILY)
        GAI_CASE(SOCKTYPE)
        GAI_CASE(SERVICE)
        GAI_CASE(OVERFLOW)
#ifdef EAI_NODATA
        GAI_CASE(NODATA)
#endif
#ifdef EAI_ADDRFAMILY
        GAI_CASE(ADDRFAMILY)
#endif
#ifdef EAI_IDN_ENCODE
        GAI_CASE(IDN_ENCODE)
#endif
#undef GAI_CASE
    default:
        return CIO_EAI_FAIL; /* a code this table does not know is still a failed lookup */
    }
}

/* On a resolver thread: getaddrinfo, its list the result. */
static int lookup_addrinfo(void *arg, void **result)
{
    lookup_t *l = arg;
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(l->host, l->port, &l->hints, &res);
    int rc = lookup_error(gai, errno);
    if (rc == 0)
        *result = res;
    return rc;
}

/* On a resolver thread: getnameinfo, a cio_nameinfo_t the result. */
static int lookup_nameinfo(void *arg, void **result)
{
    lookup_t *l = arg;
    cio_nameinfo_t *ni = calloc(1, sizeof(*ni));
    if (!ni)
        return -ENOMEM;
    int gai = getnameinfo((struct sockaddr *)&l->addr, l->addrlen, ni->host, sizeof(ni->host),
                          ni->service, sizeof(ni->service), l->ni_flags);
    int rc = lookup_error(gai, errno);
    if (rc == 0)
        *result = ni;
    else
        free(ni);
    return rc;
}

/* The resolver's private pool, made on first use; it lives as long as the process. */
static cio_executor_t *resolver_pool(void)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static cio_executor_t *pool;
    pthread_mutex_lock(&mu);
    if (!pool)
        pool = cio_executor_new(RESOLVER_THREADS);
    cio_executor_t *ex = pool;
    pthread_mutex_unlock(&mu);
    return ex;
}

/* Run @p l on the resolver's pool; @p l is the job's from here on. */
static cio_future_t *submit(cio_loop_t *loop, cio_task_fn fn, lookup_t *l,
                            void (*free_result)(void *))
{
    cio__job_spec_t spec = {.fn = fn,
                            .arg = l,
                            .free_arg = lookup_free,
                            .free_result = free_result,
                            .describe_errors = true,
                            .uncounted = true};
    return cio__executor_submit(loop, resolver_pool(), &spec);
}

cio_future_t *cio_loop_getaddrinfo(cio_loop_t *loop, const char *host, const char *port,
                                   const struct addrinfo *hints)
{
    if (!loop || (!host && !port) || atomic_load(&loop->closed))
        return NULL;
    lookup_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    if (hints)
        l->hints = *hints;
    l->hints.ai_addr = NULL;
    l->hints.ai_canonname = NULL;
    l->hints.ai_next = NULL;
    if ((host && !(l->host = strdup(host))) || (port && !(l->port = strdup(port)))) {
        lookup_free(l);
        return NULL;
    }
    return submit(loop, lookup_addrinfo, l, addrinfo_free);
}

cio_future_t *cio_loop_getnameinfo(cio_loop_t *loop, const struct sockaddr *addr, socklen_t addrlen,
                                   int flags)
{
    if (!loop || !addr || addrlen == 0 || addrlen > sizeof(struct sockaddr_storage) ||
        atomic_load(&loop->closed))
        return NULL;
    lookup_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    memcpy(&l->addr, addr, addrlen);
    l->addrlen = addrlen;
    l->ni_flags = flags;
    return submit(loop, lookup_nameinfo, l, free);
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
        return lookup_error(gai, errno);
    cio_future_t *fut = cio_loop_getaddrinfo(loop, host, port, hints);
    if (!fut)
        return -ENOMEM;
    int rc = cio_await(fut, NULL);
    if (rc == 0)
        *res = cio__future_take_result(fut);
    cio_future_unref(fut);
    return rc;
}
