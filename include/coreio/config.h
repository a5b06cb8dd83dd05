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
#include <stdint.h>

#include "coreio/common.h"
#include "coreio/log.h"
#include "coreio/proxy.h"
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

/** tls_verify_client: whether a TLS listener asks its clients for a certificate. */
typedef enum cio_config_verify {
    CIO_CONFIG_VERIFY_NO = 0,   /* asks for none */
    CIO_CONFIG_VERIFY_OPTIONAL, /* asks; a client may send none, but a bad one is refused */
    CIO_CONFIG_VERIFY_YES,      /* a client without a good certificate is refused */
} cio_config_verify_t;

/** tls_min_version: the oldest TLS version a listener accepts. */
typedef enum cio_config_tls_version {
    CIO_CONFIG_TLS12 = 0, /* TLSv1.2 */
    CIO_CONFIG_TLS13,     /* TLSv1.3 */
} cio_config_tls_version_t;

/**
 * The TLS keys of a [listener] (tcp and unix only). A listener with a
 * certificate speaks TLS and its service sees plaintext; without one every
 * other key is an error. Paths are as written when absolute, otherwise
 * joined to the directory of the file (a text parsed without a file name,
 * "<...>", keeps them as written). Whether the files can be read is the
 * application's check (the file only knows names).
 */
typedef struct cio_config_tls {
    char *certificate; /* tls_certificate = FILE: PEM, the leaf, then its chain; NULL: none */
    char *key;         /* tls_key = FILE: PEM (required with tls_certificate) */
    char *ca;          /* tls_ca = FILE: PEM CAs client certificates must chain to */
    cio_config_verify_t verify_client;    /* tls_verify_client = no | optional | yes (no) */
    cio_config_tls_version_t min_version; /* tls_min_version = TLSv1.2 | TLSv1.3 (TLSv1.2) */
    double handshake_timeout;             /* tls_handshake_timeout = duration 1ms.. (60s) */
    unsigned certificate_line, key_line, ca_line; /* where each is set, 0: not set */
} cio_config_tls_t;

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
    cio_config_tls_t tls;        /* the tls_* keys; tls.certificate NULL: plaintext */
    /* proxy_protocol = off | v1 | v2 | any (off): the PROXY header versions read before
     * anything else of each connection (coreio/proxy.h), CIO_PROXY_* bits; 0: none.
     * Not on udp listeners; anything but off requires proxy_trusted. */
    unsigned proxy_protocol;
    /* proxy_trusted = RANGE[, RANGE...]: the peers that may send a header (CIDR ranges
     * or lone addresses, comma or blank separated); only with proxy_protocol. */
    cio_cidr_t *proxy_trusted;
    size_t nproxy_trusted;
    unsigned line; /* where the section starts */
} cio_config_listener_t;

/** One "key = value" line of a [service NAME] section, as written. */
typedef struct cio_config_entry {
    char *key;
    char *value;
    unsigned line;
} cio_config_entry_t;

/**
 * A [service NAME] section: the keys of a service's own, read as text. The
 * file only checks their syntax; what they mean is the service's (its
 * declared cio_config_key_t list), checked by the application.
 */
typedef struct cio_config_service {
    char *name;    /* the service's name */
    unsigned line; /* where the section starts */
    cio_config_entry_t *entries;
    size_t nentries;
} cio_config_service_t;

/** A [module NAME] section: a shared object coreiod loads services from. */
typedef struct cio_config_module {
    char *name;         /* the module's name, which the object must declare */
    unsigned line;      /* where the section starts */
    char *path;         /* path = FILE (required); relative to the file's directory */
    unsigned path_line; /* where path is set */
} cio_config_module_t;

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
    double idle_poll; /* idle_poll = duration 0..1ms (0.05ms): cio_workers_set_idle_poll() */
    char *admin_host; /* admin = HOST:PORT | off (127.0.0.1:9100); host NULL */
    char *admin_port; /* for *:PORT, both NULL when off */
    char *agent_host; /* agent = HOST:PORT | off (off): the HAProxy agent-check listener; */
    char *agent_port; /* host NULL for *:PORT, both NULL when off */
    cio_log_format_t log_format; /* log_format = text | json (text) */
    cio_config_listener_t *listeners;
    size_t nlisteners;
    cio_config_service_t *services; /* [service NAME] sections, in file order */
    size_t nservices;
    cio_config_module_t *modules; /* [module NAME] sections, in file order */
    size_t nmodules;
    double upgrade_timeout; /* upgrade_timeout = duration, > 0 (2m): SIGUSR2's wait for the
                               new process's answer */
} cio_config_t;

/* ---- typed keys: what a service declares and its sections hold ------------------- */

/** The syntaxes of a declared key (docs/coreio.ini.5 describes each). */
typedef enum cio_config_type {
    CIO_CONFIG_STRING = 0, /* any text, at most CIO_CONFIG_LINE_MAX bytes */
    CIO_CONFIG_INTEGER,    /* a decimal integer, optionally negative */
    CIO_CONFIG_SIZE,       /* bytes, with an optional K, M or G suffix */
    CIO_CONFIG_DURATION,   /* seconds, with an optional ms, s or m suffix */
    CIO_CONFIG_BOOLEAN,    /* yes/no, on/off, true/false, 1/0 */
    CIO_CONFIG_ADDRESS,    /* HOST:PORT, [V6]:PORT or *:PORT */
    CIO_CONFIG_PATH,       /* an absolute path */
} cio_config_type_t;

/** One key a service declares for its [service NAME] section. */
typedef struct cio_config_key {
    const char *name;          /* [a-z0-9_], at most CIO_CONFIG_NAME_MAX bytes */
    cio_config_type_t type;    /* its syntax */
    const char *default_value; /* as it would be written in the file; NULL: required */
    /* INTEGER, SIZE, DURATION: the value must lie in [min, max] when min < max
     * (otherwise: SIZE 0..2^63-1, DURATION 0..365 days, INTEGER any int64). */
    double min, max;
    const char *doc; /* one line for --list-services and the docs */
} cio_config_key_t;

/** A value read as its key says. */
typedef struct cio_config_value {
    cio_config_type_t type;
    union {
        char *string; /* STRING and PATH */
        int64_t integer;
        uint64_t size;
        double duration; /* seconds */
        bool boolean;
        struct {
            char *host; /* NULL for * */
            char *port;
        } address;
    } u;
} cio_config_value_t;

/**
 * Read @p text as @p key declares into @p out (cleared with
 * cio_config_value_clear()). 0; -EINVAL (not that syntax) or -ERANGE (out of
 * the key's range) with a message in @p why; -ENOMEM. Any thread.
 */
CIO_EXTERN int cio_config_value_parse(const cio_config_key_t *key, const char *text,
                                      cio_config_value_t *out, char *why, size_t why_size);

/** Release what a value owns (the strings). */
CIO_EXTERN void cio_config_value_clear(cio_config_value_t *v);

/** The name of a type as the docs spell it ("size"). */
CIO_EXTERN const char *cio_config_type_name(cio_config_type_t type);

/* ---- parsing ------------------------------------------------------------------------ */

/** Where a checker reports what it finds (the parser's error list). */
typedef struct cio__parser cio_config_check_t;

/**
 * A check of what the file cannot judge alone (services, modules), run once
 * the whole file is read, even when it has errors (the configuration is then
 * incomplete: a listener's service may be NULL). It reports with
 * cio_config_check_error(); its errors join the parser's, in line order.
 */
typedef void (*cio_config_checker_t)(const cio_config_t *c, cio_config_check_t *chk, void *arg);

/** Report "FILE:LINE: message" from a checker. */
CIO_EXTERN void cio_config_check_error(cio_config_check_t *chk, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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

/** As cio_config_load(), with @p check run over the result (NULL: none). */
CIO_EXTERN cio_config_t *cio_config_load_checked(const char *path, cio_config_checker_t check,
                                                 void *arg, char **errors);

/** As cio_config_parse(), with @p check run over the result (NULL: none). */
CIO_EXTERN cio_config_t *cio_config_parse_checked(const char *text, const char *name,
                                                  cio_config_checker_t check, void *arg,
                                                  char **errors);

/**
 * Run @p check over the configuration @p c, already parsed: 0, or -EINVAL
 * with its errors in *@p errors as cio_config_load() gives them (-ENOMEM:
 * out of memory, *@p errors NULL). Any thread.
 */
CIO_EXTERN int cio_config_check(const cio_config_t *c, cio_config_checker_t check, void *arg,
                                char **errors);

/** The [service NAME] section of @p name (it points into @p c), or NULL. */
CIO_EXTERN const cio_config_service_t *cio_config_find_service(const cio_config_t *c,
                                                               const char *name);

/** The embedded default configuration's text (what coreiod runs with no -c): static. */
CIO_EXTERN const char *cio_config_default_text(void);

/** The listener called @p name (it points into @p c), or NULL. */
CIO_EXTERN const cio_config_listener_t *cio_config_find_listener(const cio_config_t *c,
                                                                 const char *name);

/**
 * Whether two listeners would open the same sockets the same way (protocol,
 * address, balance, backlog): a reload keeps such a listener's sockets.
 * The PROXY keys do not count: they change what is read on the sockets.
 */
CIO_EXTERN bool cio_config_listener_same_socket(const cio_config_listener_t *a,
                                                const cio_config_listener_t *b);

/**
 * Whether two listeners read PROXY headers alike: the same proxy_protocol and
 * the same proxy_trusted ranges, in the same order. NULL is like no listener.
 */
CIO_EXTERN bool cio_config_listener_same_proxy(const cio_config_listener_t *a,
                                               const cio_config_listener_t *b);

/** Free a configuration. NULL is ignored. */
CIO_EXTERN void cio_config_free(cio_config_t *c);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_CONFIG_H */
