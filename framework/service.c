/*
 * framework/service.c: the process-wide service registry. The built-in
 * services are there from the first look-up; users add theirs before the app
 * starts, and modules (module.c) add theirs when loaded. A small array under
 * a lock: services are few and looked up only when a configuration is
 * checked and listeners open; an entry never moves, so the pointers
 * cio_service_find() returns stay valid for the life of the process.
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

/* Whether @p k is a key a service may declare: a name, a type, a default of that type. */
static bool valid_key(const cio_config_key_t *k)
{
    size_t len = k->name ? strlen(k->name) : 0;
    cio_config_value_t v;
    if (len == 0 || len > CIO_CONFIG_NAME_MAX ||
        strspn(k->name, "abcdefghijklmnopqrstuvwxyz0123456789_") != len ||
        (unsigned)k->type > CIO_CONFIG_PATH)
        return false;
    if (!k->default_value)
        return true;
    int rc = cio_config_value_parse(k, k->default_value, &v, NULL, 0);
    cio_config_value_clear(&v);
    return rc == 0;
}

static bool valid_keys(const cio_service_t *svc)
{
    if (svc->nkeys && !svc->keys)
        return false;
    for (size_t i = 0; i < svc->nkeys; i++) {
        if (!valid_key(&svc->keys[i]))
            return false;
        for (size_t j = 0; j < i; j++)
            if (strcmp(svc->keys[i].name, svc->keys[j].name) == 0)
                return false;
    }
    return true;
}

static bool valid_service(const cio_service_t *svc)
{
    return svc && valid_name(svc->name) && svc->factory &&
           (svc->kinds & (CIO_SERVICE_STREAM | CIO_SERVICE_DGRAM)) &&
           !(svc->kinds & ~(unsigned)(CIO_SERVICE_STREAM | CIO_SERVICE_DGRAM)) && valid_keys(svc);
}

int cio__service_register_many(const cio_service_t *const *svcs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!valid_service(svcs[i]))
            return -EINVAL;
    pthread_mutex_lock(&lock);
    add_builtins_locked();
    int rc = nservices + n > MAX_SERVICES ? -ENOSPC : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (find_locked(svcs[i]->name))
            rc = -EEXIST;
        for (size_t j = 0; j < i && rc == 0; j++)
            if (strcmp(svcs[i]->name, svcs[j]->name) == 0)
                rc = -EEXIST;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        services[nservices++] = *svcs[i];
    pthread_mutex_unlock(&lock);
    return rc;
}

int cio_service_register(const cio_service_t *svc)
{
    return cio__service_register_many(&svc, 1);
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

size_t cio_service_list(const cio_service_t **out, size_t max)
{
    pthread_mutex_lock(&lock);
    add_builtins_locked();
    for (size_t i = 0; out && i < max && i < nservices; i++)
        out[i] = &services[i];
    size_t n = nservices;
    pthread_mutex_unlock(&lock);
    return n;
}
