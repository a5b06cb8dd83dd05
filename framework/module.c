/*
 * framework/module.c: services from shared objects (coreio/module.h). A module
 * is opened with RTLD_NOW, so a missing symbol fails here rather than in the
 * middle of serving, and RTLD_LOCAL, so two modules' own symbols never mix.
 * Its services are checked all together before any is registered: a module
 * is taken whole or not at all. Loaded modules stay for the life of the
 * process (their code may run on any worker until the end), so a list of
 * paths is all there is to remember.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coreio/module.h"
#include "internal.h"

#define MODULES_MAX 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *loaded[MODULES_MAX]; /* the files loaded, by their real paths */
static size_t nloaded;

static int fail(char **error, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char **error, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (error && vasprintf(error, fmt, ap) < 0)
        *error = NULL;
    va_end(ap);
    return rc;
}

static bool is_loaded_locked(const char *path)
{
    for (size_t i = 0; i < nloaded; i++)
        if (strcmp(loaded[i], path) == 0)
            return true;
    return false;
}

/* The module's descriptor, checked; NULL with *error set. */
static const cio_module_t *describe(void *handle, const char *path, const char *name, char **error)
{
    const cio_module_t *m = dlsym(handle, CIO_MODULE_SYMBOL);
    if (!m)
        fail(error, 0, "%s: not a coreio module (no %s symbol)", path, CIO_MODULE_SYMBOL);
    else if (m->abi != CIO_MODULE_ABI)
        fail(error, 0, "%s: built for module ABI %u, this coreiod has ABI %d: rebuild it", path,
             m->abi, CIO_MODULE_ABI);
    else if (!m->name || strcmp(m->name, name) != 0)
        fail(error, 0, "%s: the module is called \"%s\", not \"%s\"", path, m->name ? m->name : "",
             name);
    else if (!m->services || !m->services[0])
        fail(error, 0, "%s: the module has no services", path);
    else
        return m;
    return NULL;
}

/* Register every service of @p m, or none. */
static int register_all(const cio_module_t *m, const char *path, char **error)
{
    size_t n = 0;
    while (m->services[n])
        n++;
    int rc = cio__service_register_many(m->services, n);
    if (rc == -EEXIST)
        return fail(error, rc, "%s: a service of the module is already registered", path);
    if (rc < 0)
        return fail(error, rc, "%s: the module's services cannot be registered: %s", path,
                    rc == -EINVAL ? "a service is invalid (name, factory, kinds or keys)"
                                  : cio_strerror(rc));
    return 0;
}

int cio_module_load(const char *path, const char *name, char **error)
{
    if (error)
        *error = NULL;
    if (!path || !name)
        return fail(error, -EINVAL, "no module path or name");
    pthread_mutex_lock(&lock);
    int rc = 0;
    void *handle = NULL;
    const cio_module_t *m = NULL;
    /* One name per file, however the path is written (a reload may write it otherwise). */
    char *copy = realpath(path, NULL);
    if (copy && is_loaded_locked(copy))
        goto out;
    if (nloaded == MODULES_MAX) {
        rc = fail(error, -ENOSPC, "%s: more than %d modules", path, MODULES_MAX);
        goto out;
    }
    if (!(handle = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
        const char *why = dlerror();
        rc = fail(error, -ENOENT, "%s", why ? why : path);
        goto out;
    }
    copy = copy ? copy : strdup(path);
    m = copy ? describe(handle, path, name, error) : NULL;
    rc = !copy ? fail(error, -ENOMEM, "%s: out of memory", path)
         : !m  ? -EINVAL
               : register_all(m, path, error);
    if (rc < 0) {
        dlclose(handle);
        goto out;
    }
    loaded[nloaded++] = copy;
    copy = NULL;
    cio__log(CIO_LOG_INFO, "module %s %s loaded from %s", m->name, m->version ? m->version : "",
             path);
out:
    pthread_mutex_unlock(&lock);
    free(copy);
    return rc;
}
