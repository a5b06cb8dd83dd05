/*
 * config/internal.h: what the files of config/ share. value.c reads the value
 * syntaxes (numbers, sizes, durations, booleans, names, addresses); keys.c
 * knows the schema (the keys of [global] and [listener NAME] and how they
 * depend on each other); config.c splits the text into lines, hands key lines
 * to inih, tracks sections and collects the errors. Every pass is linear in
 * the text: listeners are found by name and by address through hash indexes,
 * never by walking the ones before.
 */
#ifndef CIO_CONFIG_INTERNAL_H
#define CIO_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coreio/config.h"
/* After every header that includes system ones: allocations go through the failure hook. */
#include "../loop/alloc.h"

/* Limits of the values (docs/coreio.ini.5 states them too). */
#define CIO__CONFIG_WORKERS_MAX   1024
#define CIO__CONFIG_CORE_MAX      65535
#define CIO__CONFIG_DURATION_MAX  (365.0 * 86400.0) /* seconds */
#define CIO__CONFIG_IDLE_POLL_MAX 1e-3              /* seconds, as cio_workers_set_idle_poll() */
#define CIO__CONFIG_BUFFER_MAX    ((uint64_t)1 << 30)
#define CIO__CONFIG_PATH_MAX      107 /* sun_path holds 108 bytes with the NUL */
#define CIO__CONFIG_HOST_MAX      253
#define CIO__CONFIG_MAX_KEYS      16 /* keys of the largest section */

/* ---- value syntaxes (value.c): 0, -EINVAL (not that syntax) or -ERANGE ---- */

/* A decimal number 0..@p max; "-N" is -ERANGE. */
int cio__config_uint(const char *s, uint64_t max, uint64_t *out);

/* A size: a number of bytes with an optional K, M or G (1024-based) suffix. */
int cio__config_size(const char *s, uint64_t max, uint64_t *out);

/* A duration in seconds: "N", "N.F", with an optional ms, s or m suffix. */
int cio__config_duration(const char *s, double max, double *out);

/* yes/no, on/off, true/false, 1/0, in any case. */
int cio__config_bool(const char *s, bool *out);

/* The index of @p s in the NULL-terminated @p words (any case), or -EINVAL. */
int cio__config_keyword(const char *s, const char *const *words);

/* A listener or service name: [A-Za-z0-9_.-]; -ENAMETOOLONG past CIO_CONFIG_NAME_MAX. */
int cio__config_name(const char *s);

/*
 * HOST:PORT, [IPV6]:PORT or *:PORT into malloc'd @p host (NULL for *) and
 * @p port (decimal, leading zeros dropped). On -EINVAL, @p why (a buffer of
 * @p why_size bytes) says what is wrong; -ENOMEM when out of memory.
 */
int cio__config_address(const char *s, char **host, char **port, char *why, size_t why_size);

/* Whether two hosts from cio__config_address() name the same address as written. */
bool cio__config_same_host(const char *a, const char *b);

/* ---- hashing (config.c) --------------------------------------------------- */

#define CIO__CONFIG_HASH_SEED 0xcbf29ce484222325u /* FNV-1a's offset basis */

/* FNV-1a: @p h extended with the byte @p c. */
static inline uint64_t cio__config_hash_byte(uint64_t h, unsigned char c)
{
    return (h ^ c) * 0x100000001b3u;
}

/* @p h extended with the @p n bytes at @p s. */
uint64_t cio__config_hash(uint64_t h, const void *s, size_t n);

/* @p h extended with @p host so that hosts cio__config_same_host() calls equal hash alike. */
uint64_t cio__config_hash_host(uint64_t h, const char *host);

/*
 * A set of listeners (indexes into cio_config_t.listeners) by hash, with
 * linear probing, at most half full. It holds the hashes only: the caller
 * compares the candidates it returns.
 */
typedef struct cio__config_slot {
    uint64_t hash;
    size_t item; /* the listener's index + 1; 0: the slot is free */
} cio__config_slot_t;

typedef struct cio__config_index {
    cio__config_slot_t *slots;
    size_t mask; /* the number of slots - 1 (a power of two), 0 before the first add */
    size_t count;
} cio__config_index_t;

/*
 * The next listener added with @p hash, or SIZE_MAX when there is none left;
 * *@p pos starts at 0 and keeps the place between calls.
 */
size_t cio__config_index_next(const cio__config_index_t *ix, uint64_t hash, size_t *pos);

/* Add listener @p item with @p hash; 0 or -ENOMEM. */
int cio__config_index_add(cio__config_index_t *ix, uint64_t hash, size_t item);

void cio__config_index_free(cio__config_index_t *ix);

/* ---- the parser, shared by config.c and keys.c --------------------------- */

typedef enum cio__section_kind {
    CIO__SECTION_NONE = 0, /* before the first section header */
    CIO__SECTION_GLOBAL,
    CIO__SECTION_LISTENER,
    CIO__SECTION_SERVICE, /* [service NAME]: sections.c */
    CIO__SECTION_MODULE,  /* [module NAME]: sections.c */
    CIO__SECTION_SKIP,    /* an unknown or malformed section: its keys are not read */
} cio__section_kind_t;

/* The section being read. */
typedef struct cio__section {
    cio__section_kind_t kind;
    unsigned line;
    char *title;                         /* "global", "listener NAME", for messages */
    void *target;                        /* the cio_config_t or cio_config_listener_t */
    bool scratch;                        /* target is thrown away (duplicate or bad name) */
    unsigned seen[CIO__CONFIG_MAX_KEYS]; /* where each key was set, 0: not set */
    unsigned failed;                     /* bit per key whose value was refused */
    char *address;                       /* listener: address as written, read at the end */
} cio__section_t;

typedef struct cio__config_error {
    unsigned line;
    size_t seq; /* keeps errors of one line in the order they were found */
    char *text;
} cio__config_error_t;

typedef struct cio__parser {
    const char *file;
    cio_config_t *c;
    size_t listeners_cap;              /* room in c->listeners, which grows by doubling */
    cio__config_index_t names;         /* the listeners by name */
    cio__config_index_t addresses;     /* by protocol and address, the first of each only */
    cio__config_index_t service_names; /* [service NAME] sections by name */
    cio__config_index_t module_names;  /* [module NAME] sections by name */
    size_t services_cap, modules_cap;  /* room in c->services and c->modules */
    cio_config_t scratch_global;
    cio_config_listener_t scratch_listener;
    cio__section_t sec;
    unsigned global_line; /* the first [global], 0 when none yet */
    /* The errors first in line order, a max-heap on (line, seq): errors[0] is the last. */
    cio__config_error_t errors[CIO_CONFIG_ERRORS_MAX];
    size_t nkept;                                         /* errors held in errors[] */
    size_t nerrors;                                       /* errors found, listed or not */
    uint64_t core_bits[(CIO__CONFIG_CORE_MAX + 64) / 64]; /* cores of a list, zero between lists */
    bool oom;
    /* The line inih is reading (config.c). */
    unsigned lineno;
    const char *feed; /* what the reader hands inih */
    size_t feed_len;
    bool fed;
    const char *tail; /* a long line's value, read here rather than by inih */
    size_t tail_len;
    bool handled; /* inih called the handler for the line */
} cio__parser_t;

/*
 * Record "FILE:LINE: message" (config.c): counted always, formatted and kept
 * only while among the CIO_CONFIG_ERRORS_MAX first in line order.
 */
void cio__config_error(cio__parser_t *p, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* strdup() that notes running out of memory in @p p (config.c). */
char *cio__config_strdup(cio__parser_t *p, const char *s);

/* ---- the schema (keys.c) -------------------------------------------------- */

/* The documented defaults. */
void cio__config_global_defaults(cio__parser_t *p, cio_config_t *c);
void cio__config_listener_defaults(cio_config_listener_t *l);

/* Set @p key of the current section to @p value, or record why not. */
void cio__config_set(cio__parser_t *p, const char *key, const char *value);

/* Check what a section's keys say together once the section is complete. */
void cio__config_end_global(cio__parser_t *p);
void cio__config_end_listener(cio__parser_t *p);

/* Release what a listener or a configuration's [global] owns, not the struct. */
void cio__config_listener_clear(cio_config_listener_t *l);
void cio__config_global_clear(cio_config_t *c);

/* ---- [service NAME] and [module NAME] (sections.c) ---------------------- */

/* Open the section of the header @p header ("service NAME", "module NAME"). */
void cio__config_open_service(cio__parser_t *p, const char *header);
void cio__config_open_module(cio__parser_t *p, const char *header);

/* A key of the current [service] or [module] section. */
void cio__config_set_section_key(cio__parser_t *p, const char *key, const char *value);

/* A [module] section is complete. */
void cio__config_end_module(cio__parser_t *p);

/* Release the service and module sections of @p c. */
void cio__config_sections_clear(cio_config_t *c);

#endif /* CIO_CONFIG_INTERNAL_H */
