/*
 * framework/service.c: the process-wide service registry. The built-in
 * services are there from the first look-up; users add theirs before the app
 * starts. A small array under a lock: services are few and looked up only
 * when listeners open.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "builtin.h"
#include "internal.h"

#define MAX_SERVICES 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static cio_service_t services[MAX_SERVICES];
static size_t nservices;
static bool builtins_added;

/* Whether @p name is a service name: [A-Za-z0-9_.-], 1 to CIO_CONFIG_NAME_MAX bytes. */
static bool valid_name(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > CIO_CONFIG_NAME_MAX)
        return false;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == len;
}

static const cio_service_t *find_locked(const char *name)
{
    for (size_t i = 0; i < nservices; i++)
        if (strcmp(services[i].name, name) == 0)
            return &services[i];
    return NULL;
}

static void add_builtins_locked(void)
{
    if (builtins_added)
        return;
    builtins_added = true;
    const cio_service_t *builtin[] = {&cio__service_echo, &cio__service_discard,
                                      &cio__service_http_hello, &cio__service_stats};
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
        services[nservices++] = *builtin[i];
}

int cio_service_register(const cio_service_t *svc)
{
    if (!svc || !valid_name(svc->name) || !svc->factory ||
        !(svc->kinds & (CIO_SERVICE_STREAM | CIO_SERVICE_DGRAM)) ||
        (svc->kinds & ~(unsigned)(CIO_SERVICE_STREAM | CIO_SERVICE_DGRAM)))
        return -EINVAL;
    pthread_mutex_lock(&lock);
    add_builtins_locked();
    int rc = 0;
    if (find_locked(svc->name))
        rc = -EEXIST;
    else if (nservices == MAX_SERVICES)
        rc = -ENOSPC;
    else
        services[nservices++] = *svc;
    pthread_mutex_unlock(&lock);
    return rc;
}

const cio_service_t *cio_service_find(const char *name)
{
    if (!name)
        return NULL;
    pthread_mutex_lock(&lock);
    add_builtins_locked();
    const cio_service_t *svc = find_locked(name);
    pthread_mutex_unlock(&lock);
    return svc;
}
