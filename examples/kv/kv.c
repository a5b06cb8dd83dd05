/*
 * examples/kv/kv.c: a sharded key-value service, as a coreiod module. Each
 * worker owns the keys that hash to it; a request for a key another worker
 * owns is forwarded there with a cross-shard call, and its answer comes back
 * in order with the connection's other answers. docs/SERVICES.md walks
 * through it; tests/kv.sh builds it out of tree and drives it.
 *
 * TCP, one request per line, one answer per line:
 *   SET key value   -> STORED | ERR full | ERR value too large
 *   GET key         -> VALUE value | NOT_FOUND
 *   DEL key         -> DELETED | NOT_FOUND
 *   STATS           -> STATS keys=N shards=a,b,...    (keys per worker)
 * UDP, one request per datagram:
 *   INCR name       -> the counter's new value
 *
 * Keys ([service kv] in the ini file): max_keys (all workers together, each
 * worker taking its share) and max_value_size. A line longer than a key and
 * max_value_size allow closes the connection (CIO_EFRAMETOOLONG).
 *
 * Build: cc -shared -fPIC -o kv.so kv.c $(pkg-config --cflags --libs coreio)
 */
#define _GNU_SOURCE /* vasprintf */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <coreio.h>

#define KEY_MAX 250 /* bytes of a key, as memcached */

/* ---- one worker's shard: a chained hash table ---------------------------------- */

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    size_t klen, vlen;
    char data[]; /* the key, then the value */
} entry_t;

typedef struct table {
    entry_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
} table_t;

typedef struct shard {
    table_t keys;
    table_t counters; /* INCR's, the value a decimal number */
    cio_metric_t *requests, *forwarded, *nkeys;
} shard_t;

static uint64_t hash_of(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3u;
    /* MurmurHash3's finalizer: FNV-1a alone spreads keys like "key-17" unevenly. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53u;
    return h ^ (h >> 33);
}

/* The worker that owns the key hashed to @p h (the buckets use the low bits). */
static size_t owner_of(uint64_t h, size_t nworkers)
{
    return (size_t)((h >> 32) % nworkers);
}

static entry_t **slot_of(table_t *t, uint64_t h, const char *key, size_t klen)
{
    entry_t **e = &t->buckets[h & (t->nbuckets - 1)];
    while (*e && ((*e)->hash != h || (*e)->klen != klen || memcmp((*e)->data, key, klen) != 0))
        e = &(*e)->next;
    return e;
}

/* Double the buckets once the table is as full as it is wide; 0 or -ENOMEM. */
static int table_grow(table_t *t)
{
    if (t->count < t->nbuckets)
        return 0;
    size_t n = t->nbuckets ? 2 * t->nbuckets : 64;
    entry_t **b = calloc(n, sizeof(*b));
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (entry_t *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
    return 0;
}

/* Set @p key to @p value, replacing an entry of the same key; 0 or -ENOMEM. */
static int table_set(table_t *t, uint64_t h, const char *key, size_t klen, const char *value,
                     size_t vlen)
{
    if (table_grow(t) < 0)
        return -ENOMEM;
    entry_t **slot = slot_of(t, h, key, klen);
    entry_t *e = malloc(sizeof(*e) + klen + vlen);
    if (!e)
        return -ENOMEM;
    *e = (entry_t){.hash = h, .klen = klen, .vlen = vlen};
    memcpy(e->data, key, klen);
    memcpy(e->data + klen, value, vlen);
    if (*slot) {
        e->next = (*slot)->next;
        free(*slot);
    } else {
        t->count++;
    }
    *slot = e;
    return 0;
}

static void table_clear(table_t *t)
{
    for (size_t i = 0; i < t->nbuckets; i++)
        for (entry_t *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(t->buckets);
    *t = (table_t){0};
}

/* ---- requests, applied on the owner ----------------------------------------------------- */

enum { CMD_SET, CMD_GET, CMD_DEL, CMD_INCR };

/* A request for the owner of its key: what a forwarded call carries. */
typedef struct request {
    int cmd;
    uint64_t hash;
    size_t klen, vlen;
    char data[]; /* the key, then the value */
} request_t;

/* An answer: malloc'd, ended by "\n". */
static char *answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *answer(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

static char *apply_set(cio_service_ctx_t *ctx, shard_t *s, const request_t *r)
{
    size_t share = ((size_t)cio_service_int(ctx, "max_keys") + cio_service_nworkers(ctx) - 1) /
                   cio_service_nworkers(ctx);
    entry_t **slot = s->keys.nbuckets ? slot_of(&s->keys, r->hash, r->data, r->klen) : NULL;
    if ((!slot || !*slot) && s->keys.count >= share)
        return answer("ERR full\n");
    if (table_set(&s->keys, r->hash, r->data, r->klen, r->data + r->klen, r->vlen) < 0)
        return NULL;
    cio_gauge_set(s->nkeys, (double)s->keys.count);
    return answer("STORED\n");
}

static char *apply_get(shard_t *s, const request_t *r)
{
    entry_t **slot = s->keys.nbuckets ? slot_of(&s->keys, r->hash, r->data, r->klen) : NULL;
    if (!slot || !*slot)
        return answer("NOT_FOUND\n");
    return answer("VALUE %.*s\n", (int)(*slot)->vlen, (*slot)->data + (*slot)->klen);
}

static char *apply_del(shard_t *s, const request_t *r)
{
    entry_t **slot = s->keys.nbuckets ? slot_of(&s->keys, r->hash, r->data, r->klen) : NULL;
    if (!slot || !*slot)
        return answer("NOT_FOUND\n");
    entry_t *e = *slot;
    *slot = e->next;
    free(e);
    s->keys.count--;
    cio_gauge_set(s->nkeys, (double)s->keys.count);
    return answer("DELETED\n");
}

static char *apply_incr(shard_t *s, const request_t *r)
{
    entry_t **slot = s->counters.nbuckets ? slot_of(&s->counters, r->hash, r->data, r->klen) : NULL;
    char text[24] = "0";
    if (slot && *slot) /* the value is not NUL-terminated */
        memcpy(text, (*slot)->data + (*slot)->klen, (*slot)->vlen);
    long long v = strtoll(text, NULL, 10) + 1;
    int n = snprintf(text, sizeof(text), "%lld", v);
    if (table_set(&s->counters, r->hash, r->data, r->klen, text, (size_t)n) < 0)
        return NULL;
    return answer("%lld\n", v);
}

/* Apply @p r to this worker's shard: the answer, or NULL when out of memory. */
static char *apply(cio_service_ctx_t *ctx, const request_t *r)
{
    shard_t *s = cio_service_state(ctx);
    switch (r->cmd) {
    case CMD_SET:
        return apply_set(ctx, s, r);
    case CMD_GET:
        return apply_get(s, r);
    case CMD_DEL:
        return apply_del(s, r);
    default:
        return apply_incr(s, r);
    }
}

/* A cross-shard call's function, on the owner. */
static int apply_remote(cio_service_ctx_t *ctx, void *arg, void **result)
{
    return (*result = apply(ctx, arg)) ? 0 : -ENOMEM;
}

static request_t *request_new(int cmd, const char *key, size_t klen, const char *value, size_t vlen)
{
    request_t *r = malloc(sizeof(*r) + klen + vlen);
    if (!r)
        return NULL;
    *r = (request_t){.cmd = cmd, .hash = hash_of(key, klen), .klen = klen, .vlen = vlen};
    memcpy(r->data, key, klen);
    memcpy(r->data + klen, value, vlen);
    return r;
}

/* STATS, on every worker: how many keys it owns. */
static int count_keys(cio_service_ctx_t *ctx, void *arg, void **result)
{
    shard_t *s = cio_service_state(ctx);
    *result = (void *)(uintptr_t)s->keys.count;
    return 0;
}

/* ---- a TCP connection: answers in request order ------------------------------------------- */

struct conn;

/* An answer not written yet: its text, or the future that will give it. */
typedef struct pending {
    struct pending *next;
    struct conn *c;
    char *text;        /* an answer made here, or NULL */
    cio_future_t *fut; /* a forwarded request's, or STATS's */
    bool stats;        /* fut is STATS's: its result is the keys per worker */
} pending_t;

typedef struct conn {
    cio_protocol_t base;
    cio_service_ctx_t *ctx;
    cio_transport_t *t;
    cio_framer_t framer;
    pending_t *head, *tail;
    char *out; /* answers gathered for one write: one system call per read, not per answer */
    size_t outlen, outcap;
    size_t refs; /* the transport's, plus one per future that will call back */
    bool eof;    /* the peer is done sending: close once every answer is out */
    bool lost;
} conn_t;

static void conn_unref(conn_t *c)
{
    if (--c->refs > 0)
        return;
    cio_framer_clear(&c->framer);
    free(c->out);
    free(c);
}

/* Add @p len bytes of answer to what the next send() writes; 0 or -ENOMEM. */
static int emit(conn_t *c, const char *text, size_t len)
{
    if (c->outlen + len > c->outcap) {
        size_t cap = c->outcap ? c->outcap : 4096;
        while (cap < c->outlen + len)
            cap *= 2;
        char *out = realloc(c->out, cap);
        if (!out)
            return -ENOMEM;
        c->out = out;
        c->outcap = cap;
    }
    memcpy(c->out + c->outlen, text, len);
    c->outlen += len;
    return 0;
}

/* Write what was gathered, in one write (the transport buffers what the socket refuses). */
static int send_out(conn_t *c)
{
    int rc = c->outlen && !c->lost ? cio_transport_write(c->t, c->out, c->outlen) : 0;
    c->outlen = 0;
    return rc;
}

/* STATS's answer from the futures' per-worker counts. */
static char *stats_text(cio_future_t *fut, size_t nworkers)
{
    void **counts = NULL;
    if (cio_future_result(fut, (void **)&counts) < 0)
        return answer("ERR %s\n", cio_strerror(cio_future_error(fut)));
    char shards[1024] = "";
    size_t total = 0, used = 0;
    for (size_t i = 0; i < nworkers; i++) {
        total += (uintptr_t)counts[i];
        used += (size_t)snprintf(shards + used, sizeof(shards) - used, "%s%zu", i ? "," : "",
                                 (size_t)(uintptr_t)counts[i]);
        if (used >= sizeof(shards))
            break;
    }
    return answer("STATS keys=%zu shards=%s\n", total, shards);
}

/* The text of a finished answer (the future's result belongs to the future). */
static const char *pending_text(pending_t *p, char **owned)
{
    void *text = NULL;
    if (p->text)
        return p->text;
    if (p->stats)
        return *owned = stats_text(p->fut, cio_service_nworkers(p->c->ctx));
    if (cio_future_result(p->fut, &text) < 0)
        return *owned = answer("ERR %s\n", cio_strerror(cio_future_error(p->fut)));
    return text;
}

/* Write the answers that are ready, in order, up to the first still waiting. */
static void flush(conn_t *c)
{
    while (c->head && (c->head->text || cio_future_done(c->head->fut))) {
        pending_t *p = c->head;
        char *owned = NULL;
        const char *text = pending_text(p, &owned);
        if (!c->lost && text)
            emit(c, text, strlen(text)); /* out of memory: that answer is lost, as the write */
        free(owned);
        c->head = p->next;
        if (!c->head)
            c->tail = NULL;
        free(p->text);
        cio_future_unref(p->fut);
        free(p);
    }
    if (c->eof && !c->head && !c->lost) {
        send_out(c);
        cio_transport_close(c->t); /* after what is buffered is sent */
    }
}

static void enqueue(conn_t *c, pending_t *p)
{
    p->c = c;
    if (c->tail)
        c->tail->next = p;
    else
        c->head = p;
    c->tail = p;
}

static int on_answer(cio_future_t *fut, void *arg)
{
    conn_t *c = arg;
    flush(c);
    send_out(c);
    conn_unref(c);
    return 0;
}

/* Queue an answer that is @p text (taken over) or will be @p fut's (taken over). */
static int queue(conn_t *c, char *text, cio_future_t *fut, bool stats)
{
    pending_t *p = calloc(1, sizeof(*p));
    if (!p || (fut && cio_future_add_done_callback(fut, on_answer, c) < 0)) {
        free(p);
        free(text);
        cio_future_unref(fut);
        return -ENOMEM;
    }
    *p = (pending_t){.text = text, .fut = fut, .stats = stats};
    c->refs += fut != NULL;
    enqueue(c, p);
    return 0;
}

/* Run @p r here if this worker owns its key, else forward it; the answer joins the queue. */
static int dispatch(conn_t *c, request_t *r)
{
    shard_t *s = cio_service_state(c->ctx);
    size_t owner = owner_of(r->hash, cio_service_nworkers(c->ctx));
    cio_counter_add(s->requests, 1);
    if (owner == cio_service_worker(c->ctx)) {
        char *text = apply(c->ctx, r);
        free(r);
        if (!text)
            return -ENOMEM;
        if (!c->head) { /* nothing before it: no queue */
            int rc = emit(c, text, strlen(text));
            free(text);
            return rc;
        }
        return queue(c, text, NULL, false);
    }
    cio_counter_add(s->forwarded, 1);
    cio_future_t *f = cio_service_submit_to(c->ctx, owner, apply_remote, r, free, free);
    return f ? queue(c, NULL, f, false) : -ENOMEM; /* on NULL, r is freed */
}

/* One line: a command, its key and (SET) its value. */
static int on_line(void *arg, const void *frame, size_t len)
{
    conn_t *c = arg;
    const char *line = frame, *end = line + len;
    if (len && end[-1] == '\r')
        end--;
    const char *sp = memchr(line, ' ', (size_t)(end - line));
    size_t cmdlen = sp ? (size_t)(sp - line) : (size_t)(end - line);
    const char *key = sp ? sp + 1 : end;
    const char *sp2 = memchr(key, ' ', (size_t)(end - key));
    size_t klen = sp2 ? (size_t)(sp2 - key) : (size_t)(end - key);
    const char *value = sp2 ? sp2 + 1 : end;
    size_t vlen = (size_t)(end - value);
    if (cmdlen == 5 && memcmp(line, "STATS", 5) == 0 && !sp) {
        cio_future_t *f = cio_service_invoke_on_all(c->ctx, count_keys, NULL, NULL, NULL);
        return f ? queue(c, NULL, f, true) : -ENOMEM;
    }
    int cmd = cmdlen == 3 && memcmp(line, "SET", 3) == 0   ? CMD_SET
              : cmdlen == 3 && memcmp(line, "GET", 3) == 0 ? CMD_GET
              : cmdlen == 3 && memcmp(line, "DEL", 3) == 0 ? CMD_DEL
                                                           : -1;
    const char *err = cmd < 0                             ? "ERR unknown command\n"
                      : klen == 0 || klen > KEY_MAX       ? "ERR bad key\n"
                      : (cmd == CMD_SET) != (sp2 != NULL) ? "ERR wrong number of arguments\n"
                      : vlen > cio_service_size(c->ctx, "max_value_size") ? "ERR value too large\n"
                                                                          : NULL;
    if (err)
        return c->head ? queue(c, answer("%s", err), NULL, false) : emit(c, err, strlen(err));
    request_t *r = request_new(cmd, key, klen, value, vlen);
    return r ? dispatch(c, r) : -ENOMEM;
}

static int conn_made(cio_protocol_t *p, cio_transport_t *t)
{
    ((conn_t *)p)->t = t;
    return 0;
}

static int conn_data(cio_protocol_t *p, const void *data, size_t len)
{
    conn_t *c = (conn_t *)p;
    int rc = cio_framer_feed(&c->framer, data, len, on_line, c);
    int sent = send_out(c);
    return rc < 0 ? rc : sent;
}

/* The peer sent everything (a half-close): answer it all, then close. */
static int conn_eof(cio_protocol_t *p)
{
    conn_t *c = (conn_t *)p;
    c->eof = true;
    send_out(c);
    return c->head ? 1 : 0; /* answers still to come keep the write side open */
}

/* A peer that writes without reading is held to one read's worth of answers. */
static int conn_pause(cio_protocol_t *p)
{
    cio_transport_pause_reading(((conn_t *)p)->t);
    return 0;
}

static int conn_resume(cio_protocol_t *p)
{
    cio_transport_resume_reading(((conn_t *)p)->t);
    return 0;
}

static void conn_lost(cio_protocol_t *p, int err)
{
    conn_t *c = (conn_t *)p;
    c->lost = true;
    flush(c);
    conn_unref(c);
}

static const cio_protocol_ops_t conn_ops = {
    .connection_made = conn_made,
    .data_received = conn_data,
    .eof_received = conn_eof,
    .pause_writing = conn_pause,
    .resume_writing = conn_resume,
    .connection_lost = conn_lost,
};

static cio_protocol_t *tcp_conn_new(cio_service_ctx_t *ctx)
{
    conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    cio_framer_opts_t o = {.max_frame = 4 + 1 + KEY_MAX + 1 +
                                        (size_t)cio_service_size(ctx, "max_value_size") + 1};
    if (cio_framer_init(&c->framer, &o) < 0) {
        free(c);
        return NULL;
    }
    c->base.ops = &conn_ops;
    c->ctx = ctx;
    c->refs = 1;
    return &c->base;
}

/* ---- the UDP endpoint: INCR -------------------------------------------------------------------
 */

typedef struct endpoint {
    cio_protocol_t base;
    cio_service_ctx_t *ctx;
    cio_transport_t *t;
    size_t refs;
    bool lost;
} endpoint_t;

/* A forwarded INCR: where its answer goes. */
typedef struct reply_to {
    endpoint_t *e;
    struct sockaddr_storage addr;
    socklen_t addrlen;
} reply_to_t;

static void endpoint_unref(endpoint_t *e)
{
    if (--e->refs == 0)
        free(e);
}

static int on_incr(cio_future_t *fut, void *arg)
{
    reply_to_t *r = arg;
    void *text = NULL;
    if (!r->e->lost && cio_future_result(fut, &text) == 0)
        cio_transport_sendto(r->e->t, text, strlen(text), (struct sockaddr *)&r->addr, r->addrlen);
    cio_future_unref(fut);
    endpoint_unref(r->e);
    free(r);
    return 0;
}

static int endpoint_made(cio_protocol_t *p, cio_transport_t *t)
{
    ((endpoint_t *)p)->t = t;
    return 0;
}

static int endpoint_datagram(cio_protocol_t *p, const void *data, size_t len,
                             const struct sockaddr *addr, socklen_t addrlen)
{
    endpoint_t *e = (endpoint_t *)p;
    const char *d = data;
    while (len && (d[len - 1] == '\n' || d[len - 1] == '\r'))
        len--;
    if (!addr || len <= 5 || len - 5 > KEY_MAX || memcmp(d, "INCR ", 5) != 0) {
        if (addr)
            cio_transport_sendto(e->t, "ERR\n", 4, addr, addrlen);
        return 0; /* a bad datagram does not close the endpoint for everyone */
    }
    request_t *req = request_new(CMD_INCR, d + 5, len - 5, "", 0);
    reply_to_t *r = req ? malloc(sizeof(*r)) : NULL;
    shard_t *s = cio_service_state(e->ctx);
    size_t owner = req ? owner_of(req->hash, cio_service_nworkers(e->ctx)) : 0;
    cio_counter_add(s->requests, 1);
    if (!r)
        free(req);
    cio_future_t *f =
        r ? cio_service_submit_to(e->ctx, owner, apply_remote, req, free, free) : NULL;
    if (!f || cio_future_add_done_callback(f, on_incr, r) < 0) {
        free(r);
        cio_future_unref(f);
        return 0; /* dropped, as the network may drop it */
    }
    cio_counter_add(s->forwarded, owner != cio_service_worker(e->ctx));
    *r = (reply_to_t){.e = e, .addrlen = addrlen};
    memcpy(&r->addr, addr, addrlen);
    e->refs++;
    return 0;
}

/* ICMP errors about a peer that went away must not close the endpoint. */
static int endpoint_error(cio_protocol_t *p, int err)
{
    return 0;
}

static void endpoint_lost(cio_protocol_t *p, int err)
{
    endpoint_t *e = (endpoint_t *)p;
    e->lost = true;
    endpoint_unref(e);
}

static const cio_protocol_ops_t endpoint_ops = {
    .connection_made = endpoint_made,
    .datagram_received = endpoint_datagram,
    .error_received = endpoint_error,
    .connection_lost = endpoint_lost,
};

/* ---- the service ----------------------------------------------------------------------------- */

static cio_protocol_t *kv_factory(cio_service_ctx_t *ctx)
{
    if (cio_service_listener(ctx)->protocol != CIO_CONFIG_UDP)
        return tcp_conn_new(ctx);
    endpoint_t *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->base.ops = &endpoint_ops;
    e->ctx = ctx;
    e->refs = 1;
    return &e->base;
}

static int kv_start(cio_service_ctx_t *ctx, void **state)
{
    shard_t *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->requests = cio_service_counter(ctx, "requests_total", "Requests this worker received.");
    s->forwarded = cio_service_counter(ctx, "forwarded_total",
                                       "Requests this worker sent to the key's owner.");
    s->nkeys = cio_service_gauge(ctx, "keys", "Keys this worker owns.");
    *state = s;
    return 0;
}

static void kv_stop(cio_service_ctx_t *ctx, void *state)
{
    shard_t *s = state;
    table_clear(&s->keys);
    table_clear(&s->counters);
    free(s);
}

/* New limits apply from now on: keys already stored stay, even past a lower max_keys. */
static int kv_reconfigure(cio_service_ctx_t *ctx, void *state)
{
    cio_service_log(ctx, CIO_LOG_INFO, "max_keys = %" PRId64 ", max_value_size = %" PRIu64,
                    cio_service_int(ctx, "max_keys"), cio_service_size(ctx, "max_value_size"));
    return 0;
}

static const cio_config_key_t kv_keys[] = {
    {"max_keys", CIO_CONFIG_INTEGER, "1000000", 1, 1e12, "keys stored, all workers together"},
    {"max_value_size", CIO_CONFIG_SIZE, "1K", 1, 1 << 20, "bytes of one value"},
};

static const cio_service_t kv_service = {
    .name = "kv",
    .kinds = CIO_SERVICE_STREAM | CIO_SERVICE_DGRAM,
    .doc = "a sharded key-value store: SET, GET, DEL, STATS lines; INCR datagrams",
    .keys = kv_keys,
    .nkeys = sizeof(kv_keys) / sizeof(kv_keys[0]),
    .factory = kv_factory,
    .start = kv_start,
    .stop = kv_stop,
    .reconfigure = kv_reconfigure,
};

CIO_MODULE("kv", "1.0", &kv_service);
