/*
 * config/sections.c: the sections that belong to services and modules.
 * [service NAME] holds a service's own keys, kept as text with their lines:
 * only the service knows what they mean, so the application checks them
 * against the keys the service declares (cio_config_checker_t). [module NAME]
 * names the shared object a service comes from. Both kinds are found by name
 * through hash indexes, so a file with many of them still parses in linear
 * time.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Keys of one [service] section at most: the duplicate check walks them. */
#define SERVICE_KEYS_MAX 256

/*
 * What [service NAME] and [module NAME] sections have in common: both
 * structs begin with their name and line, so one table code serves both.
 */
typedef struct named {
    char *name;
    unsigned line;
} named_t;

_Static_assert(offsetof(cio_config_service_t, name) == offsetof(named_t, name) &&
                   offsetof(cio_config_service_t, line) == offsetof(named_t, line),
               "a [service] must begin as named_t");
_Static_assert(offsetof(cio_config_module_t, name) == offsetof(named_t, name) &&
                   offsetof(cio_config_module_t, line) == offsetof(named_t, line),
               "a [module] must begin as named_t");

typedef struct table {
    const char *kind; /* "service", "module" */
    void **items;     /* &c->services or &c->modules */
    size_t *n, *cap;
    size_t size; /* of one item */
    cio__config_index_t *names;
    cio__section_kind_t section;
} table_t;

static named_t *item_at(const table_t *t, size_t i)
{
    return (named_t *)((char *)*t->items + i * t->size);
}

/* The item called @p name (whose hash is @p h), or NULL. */
static const named_t *find_named(const table_t *t, const char *name, uint64_t h)
{
    size_t pos = 0, i;
    while ((i = cio__config_index_next(t->names, h, &pos)) != SIZE_MAX)
        if (strcmp(item_at(t, i)->name, name) == 0)
            return item_at(t, i);
    return NULL;
}

/* Room for one more item, doubling; 0 or -ENOMEM. */
static int grow(const table_t *t)
{
    if (*t->n < *t->cap)
        return 0;
    size_t cap = *t->cap ? 2 * *t->cap : 4;
    void *v = realloc(*t->items, cap * t->size);
    if (!v)
        return -ENOMEM;
    *t->items = v;
    *t->cap = cap;
    return 0;
}

/* The NAME of "[KIND NAME]" in @p header, or NULL (reported) when it is not one. */
static const char *section_name(cio__parser_t *p, const char *header, const char *kind)
{
    size_t k = strlen(kind);
    const char *name = header[k] == ' ' ? header + k + 1 : NULL;
    int rc = name ? cio__config_name(name) : -EINVAL;
    if (rc == -ENAMETOOLONG)
        cio__config_error(p, p->lineno, "%s name too long (%zu bytes, at most %d)", kind,
                          strlen(name), CIO_CONFIG_NAME_MAX);
    else if (rc < 0)
        cio__config_error(p, p->lineno,
                          "[%s]: expected [%s NAME], the NAME made of letters, digits, '_', '.' "
                          "and '-'",
                          header, kind);
    return rc < 0 ? NULL : name;
}

/* Open a "[KIND NAME]" section: a new item of @p t, or nothing (its keys unread) on errors. */
static void open_named(cio__parser_t *p, const char *header, const table_t *t)
{
    const char *name = section_name(p, header, t->kind);
    uint64_t h = name ? cio__config_hash(CIO__CONFIG_HASH_SEED, name, strlen(name)) : 0;
    const named_t *other = name ? find_named(t, name, h) : NULL;
    if (other)
        cio__config_error(p, p->lineno, "duplicate section [%s %s] (first at line %u)", t->kind,
                          name, other->line);
    if (!name || other)
        return; /* stays CIO__SECTION_SKIP */
    if (grow(t) < 0 || cio__config_index_add(t->names, h, *t->n) < 0) {
        p->oom = true;
        return;
    }
    named_t *item = item_at(t, *t->n);
    memset(item, 0, t->size);
    *item = (named_t){.name = strdup(name), .line = p->lineno};
    if (!item->name) {
        p->oom = true;
        return;
    }
    ++*t->n;
    p->sec.kind = t->section;
    p->sec.target = item;
}

/* ---- [service NAME] --------------------------------------------------------------- */

void cio__config_open_service(cio__parser_t *p, const char *header)
{
    cio_config_t *c = p->c;
    table_t t = {"service",           (void **)&c->services, &c->nservices,
                 &p->services_cap,    sizeof(*c->services),  &p->service_names,
                 CIO__SECTION_SERVICE};
    open_named(p, header, &t);
}

/* A key of a [service] section: kept as written, once. */
static void set_service_key(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_service_t *s = p->sec.target;
    for (size_t i = 0; i < s->nentries; i++) {
        if (strcmp(s->entries[i].key, key) == 0) {
            cio__config_error(p, p->lineno, "duplicate key \"%s\" (first set at line %u)", key,
                              s->entries[i].line);
            return;
        }
    }
    if (s->nentries == SERVICE_KEYS_MAX) {
        cio__config_error(p, p->lineno, "[%s]: more than %d keys", p->sec.title, SERVICE_KEYS_MAX);
        return;
    }
    size_t n = s->nentries;
    /* The room doubles: 4, then 8 when the fifth comes, and so on. */
    if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
        cio_config_entry_t *v = realloc(s->entries, (n ? 2 * n : 4) * sizeof(*v));
        if (!v) {
            p->oom = true;
            return;
        }
        s->entries = v;
    }
    cio_config_entry_t *e = &s->entries[s->nentries];
    *e = (cio_config_entry_t){.key = strdup(key), .value = strdup(value), .line = p->lineno};
    if (!e->key || !e->value) {
        free(e->key);
        free(e->value);
        p->oom = true;
        return;
    }
    s->nentries++;
}

/* ---- [module NAME] ------------------------------------------------------------------ */

void cio__config_open_module(cio__parser_t *p, const char *header)
{
    cio_config_t *c = p->c;
    table_t t = {"module",           (void **)&c->modules, &c->nmodules,
                 &p->modules_cap,    sizeof(*c->modules),  &p->module_names,
                 CIO__SECTION_MODULE};
    open_named(p, header, &t);
}

static void set_module_key(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_module_t *m = p->sec.target;
    if (strcmp(key, "path") != 0) {
        cio__config_error(p, p->lineno, "unknown key \"%s\" in [%s]", key, p->sec.title);
    } else if (m->path_line) {
        cio__config_error(p, p->lineno, "duplicate key \"%s\" (first set at line %u)", key,
                          m->path_line);
    } else if (*value == '\0') {
        cio__config_error(p, p->lineno, "%s: empty value", key);
    } else {
        m->path_line = p->lineno;
        m->path = cio__config_strdup(p, value);
    }
}

void cio__config_end_module(cio__parser_t *p)
{
    const cio_config_module_t *m = p->sec.target;
    if (!m->path_line)
        cio__config_error(p, p->sec.line, "[%s]: missing required key \"path\"", p->sec.title);
}

/* ---- both ----------------------------------------------------------------------------- */

void cio__config_set_section_key(cio__parser_t *p, const char *key, const char *value)
{
    if (p->sec.kind == CIO__SECTION_SERVICE)
        set_service_key(p, key, value);
    else
        set_module_key(p, key, value);
}

void cio__config_sections_clear(cio_config_t *c)
{
    for (size_t i = 0; i < c->nservices; i++) {
        for (size_t k = 0; k < c->services[i].nentries; k++) {
            free(c->services[i].entries[k].key);
            free(c->services[i].entries[k].value);
        }
        free(c->services[i].entries);
        free(c->services[i].name);
    }
    for (size_t i = 0; i < c->nmodules; i++) {
        free(c->modules[i].name);
        free(c->modules[i].path);
    }
    free(c->services);
    free(c->modules);
    c->services = NULL;
    c->modules = NULL;
    c->nservices = c->nmodules = 0;
}

const cio_config_service_t *cio_config_find_service(const cio_config_t *c, const char *name)
{
    for (size_t i = 0; c && name && i < c->nservices; i++)
        if (strcmp(c->services[i].name, name) == 0)
            return &c->services[i];
    return NULL;
}
