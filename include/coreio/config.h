/*
 * coreio/config.h: the ini configuration of a coreio application, parsed with
 * inih into a typed, validated structure. Every problem (unknown section or
 * key, a duplicate, a bad or out-of-range value, an overlong line or name) is
 * an error naming the file and the line; nothing is truncated or ignored.
 * Parsing takes time linear in the size of the file, and the error text is
 * bounded: the first CIO_CONFIG_ERRORS_MAX errors, then their count.
 * docs/coreio.ini.5 documents every key, its default and these limits.
 *
 * Sizes take K, M or G suffixes (powers of 1024); durations take ms, s or m
 * (a bare number is seconds, decimals allowed, at most 365 days); booleans
 * are yes/no, on/off, true/false, 1/0; keywords are read in any case.
 */
#ifndef COREIO_CONFIG_H
#define COREIO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "coreio/common.h"
#include "coreio/log.h"
#include "coreio/sharded.h"
#include "coreio/workers.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CIO_CONFIG_NAME_MAX   63          /* listener and service names */
#define CIO_CONFIG_LINE_MAX   1024        /* one line of the file, newline excluded */
#define CIO_CONFIG_FILE_MAX   (16u << 20) /* bytes cio_config_load() reads at most */
#define CIO_CONFIG_ERRORS_MAX 20          /* errors listed, the rest only counted */

/** What a listener speaks. */
typedef enum cio_config_proto {
    CIO_CONFIG_TCP = 0,
    CIO_CONFIG_UDP,
    CIO_CONFIG_UNIX,
} cio_config_proto_t;

/** One [listener NAME] section. */
typedef struct cio_config_listener {
    char *name;                  /* the NAME of the section */
    char *service;               /* service = (required) */
    cio_config_proto_t protocol; /* protocol = tcp | udp | unix (tcp) */
    char *host;                  /* address = HOST:PORT, [V6]:PORT, *:PORT (tcp, udp); */
    char *port;                  /* host NULL for *, every interface; port decimal */
    char *path;                  /* address = /path (unix), at most 107 bytes */
    cio_balance_t balance;       /* balance = reuseport | handoff (reuseport; handoff for unix) */
    int backlog;                 /* backlog = 1..65535 (511) */
    double idle_timeout;         /* idle_timeout = duration, 0 = none (60s) */
    size_t write_high;           /* write_buffer_high = size 0..1G (64K) */
    size_t write_low;            /* write_buffer_low = size 0..1G (16K), <= write_high */
    unsigned line;               /* where the section starts */
} cio_config_listener_t;

/** A whole configuration: the [global] section and the listeners, in file order. */
typedef struct cio_config {
    char *file;                /* the name errors use */
    size_t workers;            /* workers = 0..1024, 0 = one per core, or per listed core (0) */
    cio_placement_t placement; /* placement = spread | pack | list (spread) */
    unsigned *cores;           /* cores = 0,1,... (placement = list only, then required; */
                               /* as many as workers unless workers = 0) */
    size_t ncores;
    bool pin;                  /* pin = bool (yes) */
    size_t executor_threads;   /* executor_threads = 0..1024, 0 = default (0) */
    cio_log_level_t log_level; /* log_level = debug | info | warning | error (info) */
    bool debug;                /* debug = bool: loops in debug mode (no) */
    double drain_timeout;      /* drain_timeout = duration (10s) */
    char *admin_host;          /* admin = HOST:PORT | off (127.0.0.1:9100); host NULL */
    char *admin_port;          /* for *:PORT, both NULL when off */
    cio_config_listener_t *listeners;
    size_t nlisteners;
} cio_config_t;

/**
 * Parse the ini file at @p path. Returns the configuration, or NULL when the
 * file cannot be read or has errors; then *@p errors (if not NULL) is a
 * malloc'd text, one "FILE:LINE: message" per line, for the caller to free
 * (an unreadable file gives "FILE: strerror"; a file over CIO_CONFIG_FILE_MAX
 * bytes "FILE: file is larger than 16 MiB"), sorted by line; on success
 * *@p errors is NULL. Every error of the file is found, not only the first:
 * the CIO_CONFIG_ERRORS_MAX first in line order are listed, and a last line
 * "FILE: N more errors (...)" counts the others. The caller frees the
 * configuration with cio_config_free(). Any thread.
 */
CIO_EXTERN cio_config_t *cio_config_load(const char *path, char **errors);

/**
 * As cio_config_load(), from the text @p text (of any length); @p name stands
 * for the file in errors ("<text>" if NULL). Any thread.
 */
CIO_EXTERN cio_config_t *cio_config_parse(const char *text, const char *name, char **errors);

/** The embedded default configuration's text (what coreiod runs with no -c): static. */
CIO_EXTERN const char *cio_config_default_text(void);

/** The listener called @p name (it points into @p c), or NULL. */
CIO_EXTERN const cio_config_listener_t *cio_config_find_listener(const cio_config_t *c,
                                                                 const char *name);

/**
 * Whether two listeners would open the same sockets the same way (protocol,
 * address, balance, backlog): a reload keeps such a listener's sockets.
 */
CIO_EXTERN bool cio_config_listener_same_socket(const cio_config_listener_t *a,
                                                const cio_config_listener_t *b);

/** Free a configuration. NULL is ignored. */
CIO_EXTERN void cio_config_free(cio_config_t *c);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_CONFIG_H */
