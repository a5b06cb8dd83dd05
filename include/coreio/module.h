/*
 * coreio/module.h: services in a shared object that coreiod loads. A module
 * defines one well-known symbol, coreio_module, with the ABI version it was
 * built against and the services it brings; the configuration names the file
 * in a [module NAME] section (coreio.ini(5)). A module built against another
 * ABI, or one that lacks the symbol, is refused with an error naming the file
 * and the line. Build one out of tree with:
 *
 *   cc -shared -fPIC -o kv.so kv.c $(pkg-config --cflags --libs coreio)
 *
 * and define it with CIO_MODULE:
 *
 *   static const cio_service_t kv = {.name = "kv", ...};
 *   CIO_MODULE("kv", "1.0", &kv);
 *
 * Modules stay loaded until the process exits: a reload can add one (its
 * services are then registered), but removing a [module] section unloads
 * nothing until the next start.
 */
#ifndef COREIO_MODULE_H
#define COREIO_MODULE_H

#include "coreio/common.h"
#include "coreio/service.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The module ABI: raised whenever cio_service_t, cio_module_t or what a
 * service may call changes incompatibly. A module must match it exactly.
 */
#define CIO_MODULE_ABI 1

/** The name of the symbol a module defines. */
#define CIO_MODULE_SYMBOL "coreio_module"

/** What a module exports, as coreio_module. */
typedef struct cio_module {
    unsigned abi;                         /* CIO_MODULE_ABI as the module saw it */
    const char *name;                     /* must be the NAME of its [module NAME] */
    const char *version;                  /* the module's own, for the logs */
    const cio_service_t *const *services; /* NULL-terminated */
} cio_module_t;

/** Define the module @p name (a string), version @p version, with its services. */
#define CIO_MODULE(name_, version_, ...)                                                           \
    CIO_EXTERN const cio_module_t coreio_module;                                                   \
    const cio_module_t coreio_module = {                                                           \
        .abi = CIO_MODULE_ABI,                                                                     \
        .name = (name_),                                                                           \
        .version = (version_),                                                                     \
        .services = (const cio_service_t *const[]){__VA_ARGS__, NULL},                             \
    }

/**
 * Load the module @p name from the shared object at @p path and register its
 * services. Loading a path already loaded is a no-op returning 0. On error
 * returns -errno with a malloc'd message in *@p error (when not NULL): the
 * file cannot be opened (dlerror's text), has no coreio_module, was built for
 * another ABI, declares another name, or brings a service that is invalid or
 * already registered (then none of its services is registered). Any thread.
 */
CIO_EXTERN int cio_module_load(const char *path, const char *name, char **error);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_MODULE_H */
