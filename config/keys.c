/*
 * config/keys.c: the schema. One table of keys per section kind, each key with
 * the function that reads its value into the section's struct; the checks
 * that need several keys (cores and placement, a listener's address and its
 * protocol, the two write buffer limits, the TLS keys, the PROXY keys,
 * addresses used twice)
 * run when the section is complete, since keys come in any order. An address is checked
 * against the others through the parser's hash index of addresses, in
 * constant time, whatever the number of listeners before it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

typedef bool (*setter_t)(cio__parser_t *p, const char *key, const char *value);

typedef struct key_def {
    const char *name;
    setter_t set;
} key_def_t;

/* Report why @p value was refused; @p rc comes from a value reader. */
static bool refuse(cio__parser_t *p, const char *key, const char *value, int rc, const char *what,
                   const char *range)
{
    if (rc == -ERANGE)
        cio__config_error(p, p->lineno, "%s: %s is out of range (%s)", key, value, range);
    else
        cio__config_error(p, p->lineno, "%s: \"%s\" is not %s", key, value, what);
    return false;
}

static bool read_number(cio__parser_t *p, const char *key, const char *value, uint64_t min,
                        uint64_t max, uint64_t *out)
{
    char range[48];
    int rc = cio__config_uint(value, max, out);
    if (rc == 0 && *out < min)
        rc = -ERANGE;
    snprintf(range, sizeof(range), "%llu..%llu", (unsigned long long)min, (unsigned long long)max);
    return rc == 0 || refuse(p, key, value, rc, "a number", range);
}

static bool read_size(cio__parser_t *p, const char *key, const char *value, size_t *out)
{
    uint64_t v;
    int rc = cio__config_size(value, CIO__CONFIG_BUFFER_MAX, &v);
    if (rc < 0)
        return refuse(p, key, value, rc, "a size (bytes, or a number with K, M or G)", "0..1G");
    *out = (size_t)v;
    return true;
}

static bool read_duration(cio__parser_t *p, const char *key, const char *value, double *out)
{
    int rc = cio__config_duration(value, CIO__CONFIG_DURATION_MAX, out);
    return rc == 0 ||
           refuse(p, key, value, rc, "a duration (a number with ms, s or m)", "0s..365 days");
}

static bool read_bool(cio__parser_t *p, const char *key, const char *value, bool *out)
{
    return cio__config_bool(value, out) == 0 ||
           refuse(p, key, value, -EINVAL, "a boolean (yes/no, on/off, true/false, 1/0)", NULL);
}

/* One of @p words (named in @p list for the message) into *@p out. */
static bool read_keyword(cio__parser_t *p, const char *key, const char *value,
                         const char *const *words, const char *list, int *out)
{
    char what[64];
    *out = cio__config_keyword(value, words);
    snprintf(what, sizeof(what), "one of %s", list);
    return *out >= 0 || refuse(p, key, value, -EINVAL, what, NULL);
}

/* ---- [global] -------------------------------------------------------------- */

enum {
    G_WORKERS,
    G_PLACEMENT,
    G_CORES,
    G_PIN,
    G_EXECUTOR,
    G_LOG,
    G_LOG_FORMAT,
    G_DEBUG,
    G_DRAIN,
    G_ADMIN,
    G_IDLE_POLL,
    G_AGENT,
    G_UPGRADE,
    G_N
};

static bool set_workers(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_t *g = p->sec.target;
    uint64_t v;
    if (!read_number(p, key, value, 0, CIO__CONFIG_WORKERS_MAX, &v))
        return false;
    g->workers = (size_t)v;
    return true;
}

static bool set_executor_threads(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_t *g = p->sec.target;
    uint64_t v;
    if (!read_number(p, key, value, 0, CIO__CONFIG_WORKERS_MAX, &v))
        return false;
    g->executor_threads = (size_t)v;
    return true;
}

static bool set_placement(cio__parser_t *p, const char *key, const char *value)
{
    static const char *const words[] = {"spread", "pack", "list", NULL};
    static const cio_placement_t values[] = {CIO_PLACE_SPREAD, CIO_PLACE_PACK, CIO_PLACE_LIST};
    cio_config_t *g = p->sec.target;
    int i;
    if (!read_keyword(p, key, value, words, "spread, pack, list", &i))
        return false;
    g->placement = values[i];
    return true;
}

/*
 * Read one core of the list @p value; @p item is the text between two commas.
 * p->core_bits has a bit set for each core read before from the same list.
 */
static bool read_core(cio__parser_t *p, const char *value, const char *item, size_t len,
                      unsigned *out)
{
    char buf[24];
    uint64_t v;
    while (len && *item == ' ')
        item++, len--;
    while (len && item[len - 1] == ' ')
        len--;
    snprintf(buf, sizeof(buf), "%.*s", (int)len, item);
    int rc = len < sizeof(buf) ? cio__config_uint(buf, CIO__CONFIG_CORE_MAX, &v) : -EINVAL;
    if (rc == -ERANGE) {
        cio__config_error(p, p->lineno, "cores: core %s is out of range (0..%d)", buf,
                          CIO__CONFIG_CORE_MAX);
        return false;
    }
    if (rc < 0) {
        cio__config_error(p, p->lineno, "cores: \"%s\" is not a list of core numbers", value);
        return false;
    }
    uint64_t bit = (uint64_t)1 << (v % 64);
    if (p->core_bits[v / 64] & bit) {
        cio__config_error(p, p->lineno, "cores: core %u is listed twice", (unsigned)v);
        return false;
    }
    p->core_bits[v / 64] |= bit;
    *out = (unsigned)v;
    return true;
}

/* Clear the bits of the @p n cores read, for the next list: cheaper than the whole bitmap. */
static void clear_core_bits(cio__parser_t *p, const unsigned *cores, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p->core_bits[cores[i] / 64] = 0;
}

/* cores = 0,1,...: logical core numbers, each once, at most one per possible worker. */
static bool set_cores(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_t *g = p->sec.target;
    unsigned *cores = malloc(CIO__CONFIG_WORKERS_MAX * sizeof(*cores));
    size_t n = 0;
    if (!cores) {
        p->oom = true;
        return false;
    }
    for (const char *s = value;; s++) {
        size_t len = strcspn(s, ",");
        if (n == CIO__CONFIG_WORKERS_MAX) {
            cio__config_error(p, p->lineno, "cores: more than %d cores listed",
                              CIO__CONFIG_WORKERS_MAX);
            goto fail_free;
        }
        if (!read_core(p, value, s, len, &cores[n]))
            goto fail_free;
        n++;
        s += len;
        if (*s == '\0')
            break;
    }
    clear_core_bits(p, cores, n);
    g->cores = cores;
    g->ncores = n;
    return true;

fail_free:
    clear_core_bits(p, cores, n);
    free(cores);
    return false;
}

static bool set_pin(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_t *g = p->sec.target;
    return read_bool(p, key, value, &g->pin);
}

static bool set_debug(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_t *g = p->sec.target;
    return read_bool(p, key, value, &g->debug);
}

static bool set_log_level(cio__parser_t *p, const char *key, const char *value)
{
    /* In the order of cio_log_level_t. */
    static const char *const words[] = {"debug", "info", "warning", "error", NULL};
    cio_config_t *g = p->sec.target;
    int i;
    if (!read_keyword(p, key, value, words, "debug, info, warning, error", &i))
        return false;
    g->log_level = (cio_log_level_t)(CIO_LOG_DEBUG + i);
    return true;
}

static bool set_log_format(cio__parser_t *p, const char *key, const char *value)
{
    /* In the order of cio_log_format_t. */
    static const char *const words[] = {"text", "json", NULL};
    cio_config_t *g = p->sec.target;
    int i;
    if (!read_keyword(p, key, value, words, "text, json", &i))
        return false;
    g->log_format = (cio_log_format_t)i;
    return true;
}

static bool set_drain_timeout(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_t *g = p->sec.target;
    return read_duration(p, key, value, &g->drain_timeout);
}

/* upgrade_timeout: a wait of none would fail every upgrade. */
static bool set_upgrade_timeout(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_t *g = p->sec.target;
    int rc = cio__config_duration(value, CIO__CONFIG_DURATION_MAX, &g->upgrade_timeout);
    if (rc == 0 && g->upgrade_timeout < 1e-3)
        rc = -ERANGE;
    return rc == 0 ||
           refuse(p, key, value, rc, "a duration (a number with ms, s or m)", "1ms..365 days");
}

static bool set_idle_poll(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_t *g = p->sec.target;
    int rc = cio__config_duration(value, CIO__CONFIG_IDLE_POLL_MAX, &g->idle_poll);
    return rc == 0 || refuse(p, key, value, rc, "a duration (a number with ms, s or m)", "0..1ms");
}

/* HOST:PORT into *@p host and *@p port (replacing theirs), or off: both NULL. */
static bool read_listen_address(cio__parser_t *p, const char *key, const char *value,
                                char **host_out, char **port_out)
{
    char why[160];
    char *host = NULL, *port = NULL;
    if (strcasecmp(value, "off") != 0) {
        int rc = cio__config_address(value, &host, &port, why, sizeof(why));
        if (rc == -ENOMEM)
            p->oom = true;
        if (rc == -EINVAL)
            cio__config_error(p, p->lineno, "%s: %s", key, why);
        if (rc < 0)
            return false;
    }
    free(*host_out);
    free(*port_out);
    *host_out = host;
    *port_out = port;
    return true;
}

/* admin = HOST:PORT, or off: no admin listener. */
static bool set_admin(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_t *g = p->sec.target;
    return read_listen_address(p, key, value, &g->admin_host, &g->admin_port);
}

/* agent = HOST:PORT, or off: no HAProxy agent-check listener. */
static bool set_agent(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_t *g = p->sec.target;
    return read_listen_address(p, key, value, &g->agent_host, &g->agent_port);
}

_Static_assert(G_N <= CIO__CONFIG_MAX_KEYS, "a [global] key has no seen[] slot");

static const key_def_t global_keys[G_N] = {
    [G_WORKERS] = {"workers", set_workers},
    [G_PLACEMENT] = {"placement", set_placement},
    [G_CORES] = {"cores", set_cores},
    [G_PIN] = {"pin", set_pin},
    [G_EXECUTOR] = {"executor_threads", set_executor_threads},
    [G_LOG] = {"log_level", set_log_level},
    [G_LOG_FORMAT] = {"log_format", set_log_format},
    [G_DEBUG] = {"debug", set_debug},
    [G_DRAIN] = {"drain_timeout", set_drain_timeout},
    [G_ADMIN] = {"admin", set_admin},
    [G_IDLE_POLL] = {"idle_poll", set_idle_poll},
    [G_AGENT] = {"agent", set_agent},
    [G_UPGRADE] = {"upgrade_timeout", set_upgrade_timeout},
};

void cio__config_global_defaults(cio__parser_t *p, cio_config_t *c)
{
    c->workers = 0;
    c->placement = CIO_PLACE_SPREAD;
    c->pin = true;
    c->executor_threads = 0;
    c->log_level = CIO_LOG_INFO;
    c->log_format = CIO_LOG_TEXT;
    c->debug = false;
    c->drain_timeout = 10.0;
    c->upgrade_timeout = 120.0;
    c->idle_poll = 50e-6;
    c->admin_host = cio__config_strdup(p, "127.0.0.1");
    c->admin_port = cio__config_strdup(p, "9100");
    c->agent_host = c->agent_port = NULL;
}

void cio__config_end_global(cio__parser_t *p)
{
    const cio_config_t *g = p->sec.target;
    const unsigned *seen = p->sec.seen;
    if (p->sec.failed & (1u << G_PLACEMENT))
        return;
    if (g->placement == CIO_PLACE_LIST && !seen[G_CORES])
        cio__config_error(p, seen[G_PLACEMENT], "placement = list needs a cores list");
    else if (seen[G_CORES] && g->placement != CIO_PLACE_LIST)
        cio__config_error(p, seen[G_CORES], "cores: only valid with placement = list");
    else if (g->cores && g->workers && g->workers != g->ncores)
        cio__config_error(p, seen[G_CORES], "cores: %zu listed, but workers = %zu", g->ncores,
                          g->workers);
}

void cio__config_global_clear(cio_config_t *c)
{
    free(c->cores);
    free(c->admin_host);
    free(c->admin_port);
    free(c->agent_host);
    free(c->agent_port);
    c->cores = NULL;
    c->ncores = 0;
    c->admin_host = c->admin_port = NULL;
    c->agent_host = c->agent_port = NULL;
}

/* ---- [listener NAME] ------------------------------------------------------- */

enum {
    L_SERVICE,
    L_PROTOCOL,
    L_ADDRESS,
    L_BALANCE,
    L_BACKLOG,
    L_IDLE,
    L_HIGH,
    L_LOW,
    L_TLS_CERT,
    L_TLS_KEY,
    L_TLS_CA,
    L_TLS_VERIFY,
    L_TLS_MIN,
    L_TLS_HANDSHAKE,
    L_PROXY_PROTOCOL,
    L_PROXY_TRUSTED,
    L_N
};

static bool set_service(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_listener_t *l = p->sec.target;
    int rc = cio__config_name(value);
    if (rc == -ENAMETOOLONG)
        cio__config_error(p, p->lineno, "%s: name too long (%zu bytes, at most %d)", key,
                          strlen(value), CIO_CONFIG_NAME_MAX);
    else if (rc < 0)
        cio__config_error(p, p->lineno,
                          "%s: \"%s\" is not a service name (letters, digits, '_', '.', '-')", key,
                          value);
    if (rc < 0)
        return false;
    l->service = cio__config_strdup(p, value);
    return true;
}

static bool set_protocol(cio__parser_t *p, const char *key, const char *value)
{
    static const char *const words[] = {"tcp", "udp", "unix", NULL};
    static const cio_config_proto_t values[] = {CIO_CONFIG_TCP, CIO_CONFIG_UDP, CIO_CONFIG_UNIX};
    cio_config_listener_t *l = p->sec.target;
    int i;
    if (!read_keyword(p, key, value, words, "tcp, udp, unix", &i))
        return false;
    l->protocol = values[i];
    return true;
}

/* Kept as written: what it means depends on the protocol, which may come later. */
static bool set_address(cio__parser_t *p, const char *key, const char *value)
{
    p->sec.address = cio__config_strdup(p, value);
    return p->sec.address != NULL;
}

static bool set_balance(cio__parser_t *p, const char *key, const char *value)
{
    static const char *const words[] = {"reuseport", "handoff", NULL};
    static const cio_balance_t values[] = {CIO_BALANCE_REUSEPORT, CIO_BALANCE_HANDOFF};
    cio_config_listener_t *l = p->sec.target;
    int i;
    if (!read_keyword(p, key, value, words, "reuseport, handoff", &i))
        return false;
    l->balance = values[i];
    return true;
}

static bool set_backlog(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_listener_t *l = p->sec.target;
    uint64_t v;
    if (!read_number(p, key, value, 1, 65535, &v))
        return false;
    l->backlog = (int)v;
    return true;
}

static bool set_idle_timeout(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_listener_t *l = p->sec.target;
    return read_duration(p, key, value, &l->idle_timeout);
}

static bool set_write_high(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_listener_t *l = p->sec.target;
    return read_size(p, key, value, &l->write_high);
}

static bool set_write_low(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_listener_t *l = p->sec.target;
    return read_size(p, key, value, &l->write_low);
}

/*
 * A file named in the configuration: as written when absolute, else joined
 * to the directory of the file (as [module] path is), so that the names do
 * not depend on the directory the program runs in. A text parsed without a
 * file name ("<default>", "<text>") keeps them as written.
 */
static char *file_path(cio__parser_t *p, const char *value)
{
    const char *file = p->file, *slash = file ? strrchr(file, '/') : NULL;
    char *path = NULL;
    if (value[0] == '/' || !slash || file[0] == '<')
        return cio__config_strdup(p, value);
    if (asprintf(&path, "%.*s/%s", (int)(slash - file), file, value) < 0) {
        p->oom = true;
        return NULL;
    }
    return path;
}

static bool set_tls_file(cio__parser_t *p, const char *value, char **out, unsigned *line)
{
    char *path = file_path(p, value);
    if (!path)
        return false;
    free(*out);
    *out = path;
    *line = p->lineno;
    return true;
}

static bool set_tls_certificate(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_tls_t *t = &((cio_config_listener_t *)p->sec.target)->tls;
    return set_tls_file(p, value, &t->certificate, &t->certificate_line);
}

static bool set_tls_key(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_tls_t *t = &((cio_config_listener_t *)p->sec.target)->tls;
    return set_tls_file(p, value, &t->key, &t->key_line);
}

static bool set_tls_ca(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_tls_t *t = &((cio_config_listener_t *)p->sec.target)->tls;
    return set_tls_file(p, value, &t->ca, &t->ca_line);
}

static bool set_tls_verify(cio__parser_t *p, const char *key, const char *value)
{
    /* In the order of cio_config_verify_t. */
    static const char *const words[] = {"no", "optional", "yes", NULL};
    cio_config_tls_t *t = &((cio_config_listener_t *)p->sec.target)->tls;
    int i;
    if (!read_keyword(p, key, value, words, "no, optional, yes", &i))
        return false;
    t->verify_client = (cio_config_verify_t)i;
    return true;
}

static bool set_tls_min_version(cio__parser_t *p, const char *key, const char *value)
{
    /* In the order of cio_config_tls_version_t. */
    static const char *const words[] = {"TLSv1.2", "TLSv1.3", NULL};
    cio_config_tls_t *t = &((cio_config_listener_t *)p->sec.target)->tls;
    int i;
    if (!read_keyword(p, key, value, words, "TLSv1.2, TLSv1.3", &i))
        return false;
    t->min_version = (cio_config_tls_version_t)i;
    return true;
}

/* Not 0: the TLS layer reads 0 as its default, which would hide a typo. */
static bool set_tls_handshake_timeout(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_tls_t *t = &((cio_config_listener_t *)p->sec.target)->tls;
    int rc = cio__config_duration(value, CIO__CONFIG_DURATION_MAX, &t->handshake_timeout);
    if (rc == 0 && t->handshake_timeout < 1e-3)
        rc = -ERANGE;
    return rc == 0 ||
           refuse(p, key, value, rc, "a duration (a number with ms, s or m)", "1ms..365 days");
}

/* proxy_protocol = off | v1 | v2 | any: the header versions the listener reads. */
static bool set_proxy_protocol(cio__parser_t *p, const char *key, const char *value)
{
    static const char *const words[] = {"off", "v1", "v2", "any", NULL};
    static const unsigned values[] = {0, CIO_PROXY_V1, CIO_PROXY_V2, CIO_PROXY_ANY};
    cio_config_listener_t *l = p->sec.target;
    int i;
    if (!read_keyword(p, key, value, words, "off, v1, v2, any", &i))
        return false;
    l->proxy_protocol = values[i];
    return true;
}

/* The separators of a list of ranges: commas, blanks, or both. */
#define RANGE_SEPARATORS ", \t"

/* How many ranges the list @p value names. */
static size_t count_ranges(const char *value)
{
    size_t n = 0;
    for (const char *s = value + strspn(value, RANGE_SEPARATORS); *s;
         s += strspn(s, RANGE_SEPARATORS)) {
        s += strcspn(s, RANGE_SEPARATORS);
        n++;
    }
    return n;
}

/* Read the range of @p len bytes at @p item into *@p out, or say which one is wrong. */
static bool read_range(cio__parser_t *p, const char *key, const char *item, size_t len,
                       cio_cidr_t *out)
{
    /* "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128" is the longest range. */
    char buf[64];
    if (len < sizeof(buf)) {
        memcpy(buf, item, len);
        buf[len] = '\0';
        if (cio_cidr_parse(buf, out) == 0)
            return true;
    }
    cio__config_error(p, p->lineno,
                      "%s: \"%.*s\" is not an address range (ADDRESS/PREFIX or an address)", key,
                      (int)len, item);
    return false;
}

/* proxy_trusted = RANGE[, RANGE...]: CIDR ranges or lone addresses, IPv4 or IPv6. */
static bool set_proxy_trusted(cio__parser_t *p, const char *key, const char *value)
{
    cio_config_listener_t *l = p->sec.target;
    size_t n = count_ranges(value), i = 0;
    if (n == 0) {
        cio__config_error(p, p->lineno, "%s: \"%s\" lists no address range", key, value);
        return false;
    }
    cio_cidr_t *v = calloc(n, sizeof(*v));
    if (!v) {
        p->oom = true;
        return false;
    }
    for (const char *s = value + strspn(value, RANGE_SEPARATORS); *s;
         s += strspn(s, RANGE_SEPARATORS)) {
        size_t len = strcspn(s, RANGE_SEPARATORS);
        if (!read_range(p, key, s, len, &v[i++])) {
            free(v);
            return false;
        }
        s += len;
    }
    l->proxy_trusted = v;
    l->nproxy_trusted = n;
    return true;
}

_Static_assert(L_N <= CIO__CONFIG_MAX_KEYS, "a [listener] key has no seen[] slot");

static const key_def_t listener_keys[L_N] = {
    [L_SERVICE] = {"service", set_service},
    [L_PROTOCOL] = {"protocol", set_protocol},
    [L_ADDRESS] = {"address", set_address},
    [L_BALANCE] = {"balance", set_balance},
    [L_BACKLOG] = {"backlog", set_backlog},
    [L_IDLE] = {"idle_timeout", set_idle_timeout},
    [L_HIGH] = {"write_buffer_high", set_write_high},
    [L_LOW] = {"write_buffer_low", set_write_low},
    [L_TLS_CERT] = {"tls_certificate", set_tls_certificate},
    [L_TLS_KEY] = {"tls_key", set_tls_key},
    [L_TLS_CA] = {"tls_ca", set_tls_ca},
    [L_TLS_VERIFY] = {"tls_verify_client", set_tls_verify},
    [L_TLS_MIN] = {"tls_min_version", set_tls_min_version},
    [L_TLS_HANDSHAKE] = {"tls_handshake_timeout", set_tls_handshake_timeout},
    [L_PROXY_PROTOCOL] = {"proxy_protocol", set_proxy_protocol},
    [L_PROXY_TRUSTED] = {"proxy_trusted", set_proxy_trusted},
};

void cio__config_listener_defaults(cio_config_listener_t *l)
{
    l->protocol = CIO_CONFIG_TCP;
    l->balance = CIO_BALANCE_REUSEPORT; /* handoff for unix, settled at the end */
    l->backlog = 511;
    l->idle_timeout = 60.0;
    l->write_high = 64 * 1024;
    l->write_low = 16 * 1024;
    l->tls.verify_client = CIO_CONFIG_VERIFY_NO;
    l->tls.min_version = CIO_CONFIG_TLS12;
    l->tls.handshake_timeout = 60.0;
}

/* The address as the protocol reads it: a path for unix, HOST:PORT otherwise. */
static void check_address(cio__parser_t *p, cio_config_listener_t *l)
{
    const char *a = p->sec.address;
    unsigned line = p->sec.seen[L_ADDRESS];
    char why[160];
    if (l->protocol == CIO_CONFIG_UNIX) {
        if (a[0] != '/')
            cio__config_error(p, line,
                              "address: a unix listener needs an absolute path, not \"%s\"", a);
        else if (strlen(a) > CIO__CONFIG_PATH_MAX)
            cio__config_error(p, line, "address: path too long (%zu bytes, at most %d)", strlen(a),
                              CIO__CONFIG_PATH_MAX);
        else
            l->path = cio__config_strdup(p, a);
        return;
    }
    if (a[0] == '/') {
        cio__config_error(p, line, "address: a path needs protocol = unix");
        return;
    }
    int rc = cio__config_address(a, &l->host, &l->port, why, sizeof(why));
    if (rc == -ENOMEM)
        p->oom = true;
    else if (rc < 0)
        cio__config_error(p, line, "address: %s", why);
}

/* Whether @p a and @p b take the same address: port 0 is a new port each time. */
static bool same_address(const cio_config_listener_t *a, const cio_config_listener_t *b)
{
    if (a->protocol != b->protocol)
        return false;
    if (a->protocol == CIO_CONFIG_UNIX)
        return a->path && b->path && strcmp(a->path, b->path) == 0;
    return a->port && b->port && strcmp(a->port, b->port) == 0 && strcmp(a->port, "0") != 0 &&
           cio__config_same_host(a->host, b->host);
}

/* A hash of what same_address() compares, so that equal addresses hash alike. */
static uint64_t address_hash(const cio_config_listener_t *l)
{
    uint64_t h = cio__config_hash_byte(CIO__CONFIG_HASH_SEED, (unsigned char)l->protocol);
    if (l->protocol == CIO_CONFIG_UNIX)
        return cio__config_hash(h, l->path, strlen(l->path));
    h = cio__config_hash(h, l->port, strlen(l->port) + 1);
    return cio__config_hash_host(h, l->host);
}

/* The listener just read against the ones before it, through the index of addresses. */
static void check_unique(cio__parser_t *p, const cio_config_listener_t *l)
{
    const cio_config_t *c = p->c;
    size_t pos = 0, k;
    if (l->port && strcmp(l->port, "0") == 0)
        return; /* a new port each time: it clashes with none */
    uint64_t h = address_hash(l);
    while ((k = cio__config_index_next(&p->addresses, h, &pos)) != SIZE_MAX) {
        if (same_address(&c->listeners[k], l)) {
            cio__config_error(p, p->sec.seen[L_ADDRESS],
                              "address: %s is already used by [listener %s] at line %u",
                              p->sec.address, c->listeners[k].name, c->listeners[k].line);
            return;
        }
    }
    /* Only the first listener of an address goes in: a third is blamed on the first too. */
    if (cio__config_index_add(&p->addresses, h, (size_t)(l - c->listeners)) < 0)
        p->oom = true;
}

static void check_balance(cio__parser_t *p, cio_config_listener_t *l)
{
    unsigned line = p->sec.seen[L_BALANCE];
    if (!line || (p->sec.failed & (1u << L_BALANCE)))
        l->balance = l->protocol == CIO_CONFIG_UNIX ? CIO_BALANCE_HANDOFF : CIO_BALANCE_REUSEPORT;
    else if (l->protocol == CIO_CONFIG_UDP && l->balance != CIO_BALANCE_REUSEPORT)
        cio__config_error(p, line, "balance: a udp listener needs reuseport");
    else if (l->protocol == CIO_CONFIG_UNIX && l->balance != CIO_BALANCE_HANDOFF)
        cio__config_error(p, line, "balance: a unix listener needs handoff");
}

/* A size as it would be written: "16K" rather than "16384". */
static const char *format_size(char *buf, size_t size, size_t v)
{
    static const char units[] = "GMK";
    for (int i = 0; i < 3; i++) {
        size_t unit = (size_t)1 << (10 * (3 - i));
        if (v && v % unit == 0) {
            snprintf(buf, size, "%zu%c", v / unit, units[i]);
            return buf;
        }
    }
    snprintf(buf, size, "%zu", v);
    return buf;
}

static void check_buffers(cio__parser_t *p, const cio_config_listener_t *l)
{
    const unsigned *seen = p->sec.seen;
    char low[24], high[24];
    if ((p->sec.failed & ((1u << L_HIGH) | (1u << L_LOW))) || l->write_low <= l->write_high)
        return;
    cio__config_error(p, seen[L_LOW] ? seen[L_LOW] : seen[L_HIGH],
                      "write_buffer_low (%s) must not exceed write_buffer_high (%s)",
                      format_size(low, sizeof(low), l->write_low),
                      format_size(high, sizeof(high), l->write_high));
}

/* Every tls_* key set in a udp listener, which cannot speak TLS. */
static void refuse_udp_tls(cio__parser_t *p)
{
    for (int k = L_TLS_CERT; k <= L_TLS_HANDSHAKE; k++)
        if (p->sec.seen[k])
            cio__config_error(p, p->sec.seen[k], "%s: a udp listener cannot speak TLS",
                              listener_keys[k].name);
}

/* The tls_* keys together: a certificate and its key, and a CA when clients are verified. */
static void check_tls(cio__parser_t *p, const cio_config_listener_t *l)
{
    static const char *const verify_words[] = {"no", "optional", "yes"};
    const unsigned *seen = p->sec.seen;
    if (l->protocol == CIO_CONFIG_UDP && !(p->sec.failed & (1u << L_PROTOCOL))) {
        refuse_udp_tls(p);
        return;
    }
    if (!seen[L_TLS_CERT]) {
        /* Without a certificate the listener is plaintext: any other TLS key is a mistake. */
        for (int k = L_TLS_KEY; k <= L_TLS_HANDSHAKE; k++)
            if (seen[k])
                cio__config_error(p, seen[k], "%s without tls_certificate", listener_keys[k].name);
        return;
    }
    if (!seen[L_TLS_KEY])
        cio__config_error(p, seen[L_TLS_CERT], "tls_certificate without tls_key");
    if (l->tls.verify_client != CIO_CONFIG_VERIFY_NO && !seen[L_TLS_CA])
        cio__config_error(p, seen[L_TLS_VERIFY], "tls_verify_client = %s needs tls_ca",
                          verify_words[l->tls.verify_client]);
    else if (seen[L_TLS_CA] && l->tls.verify_client == CIO_CONFIG_VERIFY_NO &&
             !(p->sec.failed & ((1u << L_TLS_VERIFY) | (1u << L_TLS_CA))))
        cio__config_error(p, seen[L_TLS_CA],
                          "tls_ca: only used with tls_verify_client = optional or yes");
}

/*
 * The PROXY keys together. A listener that believes every peer's header
 * would let anyone claim any address, so a header needs trusted peers; the
 * ranges alone would do nothing; and datagrams carry v2 headers only.
 */
static void check_proxy(cio__parser_t *p, const cio_config_listener_t *l)
{
    static const char *const names[] = {"off", "v1", "v2", "any"};
    const unsigned *seen = p->sec.seen, failed = p->sec.failed;
    bool on = l->proxy_protocol != 0 || (failed & (1u << L_PROXY_PROTOCOL));
    if (l->protocol == CIO_CONFIG_UDP && !(failed & (1u << L_PROTOCOL)) && l->proxy_protocol &&
        l->proxy_protocol != CIO_PROXY_V2)
        cio__config_error(p, seen[L_PROXY_PROTOCOL],
                          "proxy_protocol = %s: udp listeners take v2 only (v1 is for streams)",
                          names[l->proxy_protocol]);
    else if (l->proxy_protocol && !seen[L_PROXY_TRUSTED])
        cio__config_error(p, seen[L_PROXY_PROTOCOL],
                          "proxy_protocol = %s needs proxy_trusted (the peers that may send "
                          "a header)",
                          names[l->proxy_protocol]);
    else if (seen[L_PROXY_TRUSTED] && !on)
        cio__config_error(p, seen[L_PROXY_TRUSTED],
                          "proxy_trusted: only used with proxy_protocol = v1, v2 or any");
}

void cio__config_end_listener(cio__parser_t *p)
{
    static const int required[] = {L_SERVICE, L_ADDRESS};
    cio_config_listener_t *l = p->sec.target;
    /* A listener thrown away for its name is not blamed for what it lacks too. */
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]) && !p->sec.scratch; i++) {
        if (!p->sec.seen[required[i]])
            cio__config_error(p, p->sec.line, "[%s]: missing required key \"%s\"", p->sec.title,
                              listener_keys[required[i]].name);
    }
    check_buffers(p, l);
    check_tls(p, l);
    check_proxy(p, l);
    if (p->sec.failed & (1u << L_PROTOCOL))
        return; /* the address and balance cannot be judged without it */
    check_balance(p, l);
    if (!p->sec.address)
        return;
    check_address(p, l);
    if (!p->sec.scratch && (l->path || l->port))
        check_unique(p, l);
}

void cio__config_listener_clear(cio_config_listener_t *l)
{
    free(l->name);
    free(l->service);
    free(l->host);
    free(l->port);
    free(l->path);
    free(l->tls.certificate);
    free(l->tls.key);
    free(l->tls.ca);
    free(l->proxy_trusted);
    memset(l, 0, sizeof(*l));
}

/* ---- both ------------------------------------------------------------------- */

void cio__config_set(cio__parser_t *p, const char *key, const char *value)
{
    const key_def_t *keys = p->sec.kind == CIO__SECTION_GLOBAL ? global_keys : listener_keys;
    size_t n = p->sec.kind == CIO__SECTION_GLOBAL ? G_N : L_N;
    size_t i = 0;
    if (p->sec.kind == CIO__SECTION_SKIP)
        return; /* the section header has been reported */
    if (p->sec.kind == CIO__SECTION_SERVICE || p->sec.kind == CIO__SECTION_MODULE) {
        cio__config_set_section_key(p, key, value);
        return;
    }
    if (p->sec.kind == CIO__SECTION_NONE) {
        cio__config_error(p, p->lineno, "key \"%s\" is outside any section", key);
        return;
    }
    while (i < n && strcmp(keys[i].name, key) != 0)
        i++;
    if (i == n) {
        cio__config_error(p, p->lineno, "unknown key \"%s\" in [%s]", key, p->sec.title);
        return;
    }
    if (p->sec.seen[i]) {
        cio__config_error(p, p->lineno, "duplicate key \"%s\" (first set at line %u)", key,
                          p->sec.seen[i]);
        return;
    }
    p->sec.seen[i] = p->lineno;
    if (*value == '\0')
        cio__config_error(p, p->lineno, "%s: empty value", key);
    if (*value == '\0' || !keys[i].set(p, key, value))
        p->sec.failed |= 1u << i;
}
