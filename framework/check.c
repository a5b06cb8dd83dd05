/*
 * framework/check.c: what a configuration asks of the services and modules,
 * judged with the file's own errors (a cio_config_checker_t), so that
 * coreiod -t, the start and every reload report them all, in line order, each
 * at its line: a module that cannot be loaded, a listener whose service does
 * not exist or does not speak its protocol, a [service] section for no
 * service, a key the service does not declare, a bad value, a required key
 * left out, a TLS file that cannot be read or a key that does not match its
 * certificate.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coreio/module.h"
#include "coreio/tls.h"
#include "internal.h"

/* @p path as written, or relative to the directory of the file @p file. */
static void module_path(const char *file, const char *path, char *out, size_t size)
{
    char dir[PATH_MAX];
    if (path[0] == '/' || !file || file[0] == '<') {
        snprintf(out, size, "%s", path);
        return;
    }
    snprintf(dir, sizeof(dir), "%s", file);
    snprintf(out, size, "%s/%s", dirname(dir), path);
}

static void check_modules(const cio_config_t *c, cio_config_check_t *chk)
{
    for (size_t i = 0; i < c->nmodules; i++) {
        const cio_config_module_t *m = &c->modules[i];
        char path[PATH_MAX + 64], *why = NULL;
        if (!m->path)
            continue; /* reported by the parser */
        module_path(c->file, m->path, path, sizeof(path));
        if (cio_module_load(path, m->name, &why) < 0)
            cio_config_check_error(chk, m->path_line, "[module %s]: %s", m->name,
                                   why ? why : "out of memory");
        free(why);
    }
}

/* The line and the file of the TLS key @p key of @p t. */
static unsigned tls_line(const cio_config_tls_t *t, const char *key, const char **file)
{
    if (strcmp(key, "tls_key") == 0) {
        *file = t->key;
        return t->key_line;
    }
    if (strcmp(key, "tls_ca") == 0) {
        *file = t->ca;
        return t->ca_line;
    }
    *file = t->certificate;
    return t->certificate_line;
}

/* Whether the file of @p key (NULL: not set) can be read; if not, say so at its line. */
static bool tls_file_ok(const cio_config_tls_t *t, const char *key, cio_config_check_t *chk)
{
    const char *file;
    unsigned line = tls_line(t, key, &file);
    int rc = file ? cio__file_readable(file) : 0;
    if (rc < 0)
        cio_config_check_error(chk, line, "%s: %s: %s", key, file, cio_strerror(rc));
    return rc == 0;
}

/*
 * The TLS files of a listener: each can be read, and together they make a
 * server context (the key matches the certificate, the CA file reads), as
 * the listener will make it. The parser has judged the keys together.
 */
static void check_tls(const cio_config_listener_t *l, cio_config_check_t *chk)
{
    const cio_config_tls_t *t = &l->tls;
    const char *key = "tls_certificate", *file;
    SSL_CTX *ctx = NULL;
    if (!t->certificate || l->protocol == CIO_CONFIG_UDP)
        return;
    bool ok = tls_file_ok(t, "tls_certificate", chk);
    ok = tls_file_ok(t, "tls_key", chk) && ok;
    ok = tls_file_ok(t, "tls_ca", chk) && ok;
    if (!ok || !t->key || (t->verify_client != CIO_CONFIG_VERIFY_NO && !t->ca))
        return; /* what is missing is the parser's error */
    int rc = cio__listener_tls_context(l, &ctx, &key);
    SSL_CTX_free(ctx);
    if (rc < 0) {
        unsigned line = tls_line(t, key, &file);
        cio_config_check_error(chk, line, "%s: %s: %s", key, file ? file : "", cio_strerror(rc));
    }
}

static void check_listeners(const cio_config_t *c, cio_config_check_t *chk)
{
    for (size_t i = 0; i < c->nlisteners; i++) {
        const cio_config_listener_t *l = &c->listeners[i];
        check_tls(l, chk);
        if (!l->service)
            continue; /* reported by the parser */
        const cio_service_t *svc = cio_service_find(l->service);
        unsigned need = l->protocol == CIO_CONFIG_UDP ? CIO_SERVICE_DGRAM : CIO_SERVICE_STREAM;
        if (!svc)
            cio_config_check_error(chk, l->line, "listener %s: no service called \"%s\"", l->name,
                                   l->service);
        else if (!(svc->kinds & need))
            cio_config_check_error(chk, l->line, "listener %s: service %s does not speak %s",
                                   l->name, l->service,
                                   l->protocol == CIO_CONFIG_UDP ? "udp" : "streams");
    }
}

static const cio_config_key_t *find_key(const cio_service_t *svc, const char *name)
{
    for (size_t i = 0; i < svc->nkeys; i++)
        if (strcmp(svc->keys[i].name, name) == 0)
            return &svc->keys[i];
    return NULL;
}

/* Each key of @p s is declared and its value reads as its type says. */
static void check_entries(const cio_config_service_t *s, const cio_service_t *svc,
                          cio_config_check_t *chk)
{
    for (size_t k = 0; k < s->nentries; k++) {
        const cio_config_entry_t *e = &s->entries[k];
        const cio_config_key_t *key = find_key(svc, e->key);
        cio_config_value_t v;
        char why[256];
        if (!key) {
            cio_config_check_error(chk, e->line, "unknown key \"%s\" in [service %s]", e->key,
                                   s->name);
            continue;
        }
        int rc = cio_config_value_parse(key, e->value, &v, why, sizeof(why));
        if (rc == -ENOMEM)
            cio_config_check_error(chk, e->line, "%s: out of memory", e->key);
        else if (rc < 0)
            cio_config_check_error(chk, e->line, "%s: %s", e->key, why);
        cio_config_value_clear(&v);
    }
}

/* Whether @p s (NULL: no section) sets @p key. */
static bool section_sets(const cio_config_service_t *s, const char *key)
{
    for (size_t k = 0; s && k < s->nentries; k++)
        if (strcmp(s->entries[k].key, key) == 0)
            return true;
    return false;
}

/* The required keys of @p svc, in its section or, without one, at the listener using it. */
static void check_required(const cio_service_t *svc, const cio_config_service_t *s, unsigned line,
                           cio_config_check_t *chk)
{
    for (size_t i = 0; i < svc->nkeys; i++)
        if (!svc->keys[i].default_value && !section_sets(s, svc->keys[i].name))
            cio_config_check_error(chk, line, "[service %s]: missing required key \"%s\"",
                                   svc->name, svc->keys[i].name);
}

static void check_sections(const cio_config_t *c, cio_config_check_t *chk)
{
    for (size_t i = 0; i < c->nservices; i++) {
        const cio_config_service_t *s = &c->services[i];
        const cio_service_t *svc = cio_service_find(s->name);
        if (!svc) {
            cio_config_check_error(chk, s->line,
                                   "[service %s]: no service called \"%s\" (built in, or "
                                   "from a [module])",
                                   s->name, s->name);
            continue;
        }
        check_entries(s, svc, chk);
        check_required(svc, s, s->line, chk);
    }
    /* A service used without a section of its own still needs its required keys. */
    for (size_t i = 0; i < c->nlisteners; i++) {
        const cio_config_listener_t *l = &c->listeners[i];
        const cio_service_t *svc = l->service ? cio_service_find(l->service) : NULL;
        if (svc && !cio_config_find_service(c, svc->name))
            check_required(svc, NULL, l->line, chk);
    }
}

void cio__check_config(const cio_config_t *c, cio_config_check_t *chk, void *arg)
{
    check_modules(c, chk); /* first: they bring the services the rest is checked against */
    check_listeners(c, chk);
    check_sections(c, chk);
}
