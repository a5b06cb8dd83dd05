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
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <coreio.h>

#define KEY_MAX  250        /* bytes of a key, as memcached */
#define OUT_HOLD (16 << 10) /* answers held back while others of the same reads are pending */

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
    size_t share;     /* max_keys / workers: the keys this worker may own */
    uint64_t max_value;
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

/* An answer, ended by "\n": inline when it fits (nearly always), else malloc'd. */
typedef struct answer {
    size_t len;
    char *big;
    char text[112];
} answer_t;

static const char *answer_text(const answer_t *a)
{
    return a->big ? a->big : a->text;
}

/* @p head, then @p len bytes at @p tail, then "\n"; -ENOMEM when it cannot be kept. */
static int answer_set(answer_t *a, const char *head, const char *tail, size_t len)
{
    size_t n = strlen(head) + len + 1;
    char *to = n <= sizeof(a->text) ? a->text : (a->big = malloc(n));
    if (!to)
        return -ENOMEM;
    memcpy(to, head, strlen(head));
    memcpy(to + strlen(head), tail, len);
    to[n - 1] = '\n';
    a->len = n;
    return 0;
}

/*
 * A request for the owner of its key. A forwarded one is one allocation: the
 * key and value copied after it, and the room where the owner writes the
 * answer, so that nothing crosses threads but the request itself, which the
 * caller frees once it has the answer.
 */
typedef struct request {
    int cmd;
    uint64_t hash;
    const char *key, *value;
    size_t klen, vlen;
    answer_t answer;
    char data[]; /* a forwarded request's key, then its value */
} request_t;

static int apply_set(shard_t *s, request_t *r)
{
    entry_t **slot = s->keys.nbuckets ? slot_of(&s->keys, r->hash, r->key, r->klen) : NULL;
    if ((!slot || !*slot) && s->keys.count >= s->share)
        return answer_set(&r->answer, "ERR full", "", 0);
    if (table_set(&s->keys, r->hash, r->key, r->klen, r->value, r->vlen) < 0)
        return -ENOMEM;
    cio_gauge_set(s->nkeys, (double)s->keys.count);
    return answer_set(&r->answer, "STORED", "", 0);
}

static int apply_get(shard_t *s, request_t *r)
{
    entry_t **slot = s->keys.nbuckets ? slot_of(&s->keys, r->hash, r->key, r->klen) : NULL;
    if (!slot || !*slot)
        return answer_set(&r->answer, "NOT_FOUND", "", 0);
    return answer_set(&r->answer, "VALUE ", (*slot)->data + (*slot)->klen, (*slot)->vlen);
}

static int apply_del(shard_t *s, request_t *r)
{
    entry_t **slot = s->keys.nbuckets ? slot_of(&s->keys, r->hash, r->key, r->klen) : NULL;
    if (!slot || !*slot)
        return answer_set(&r->answer, "NOT_FOUND", "", 0);
    entry_t *e = *slot;
    *slot = e->next;
    free(e);
    s->keys.count--;
    cio_gauge_set(s->nkeys, (double)s->keys.count);
    return answer_set(&r->answer, "DELETED", "", 0);
}

static int apply_incr(shard_t *s, request_t *r)
{
    entry_t **slot = s->counters.nbuckets ? slot_of(&s->counters, r->hash, r->key, r->klen) : NULL;
    char text[24] = "0";
    if (slot && *slot) /* the value is not NUL-terminated */
        memcpy(text, (*slot)->data + (*slot)->klen, (*slot)->vlen);
    int n = snprintf(text, sizeof(text), "%lld", strtoll(text, NULL, 10) + 1);
    if (table_set(&s->counters, r->hash, r->key, r->klen, text, (size_t)n) < 0)
        return -ENOMEM;
    return answer_set(&r->answer, text, "", 0);
}

/* Apply @p r to this worker's shard, writing its answer into it: 0 or -ENOMEM. */
static int apply(cio_service_ctx_t *ctx, request_t *r)
{
    shard_t *s = cio_service_state(ctx);
    switch (r->cmd) {
    case CMD_SET:
        return apply_set(s, r);
    case CMD_GET:
        return apply_get(s, r);
    case CMD_DEL:
        return apply_del(s, r);
    default:
        return apply_incr(s, r);
    }
}

/* A cross-shard call's function, on the owner: the answer goes into the request. */
static int apply_remote(cio_service_ctx_t *ctx, void *arg, void **result)
{
    return apply(ctx, arg);
}

/* A copy of @p r that can travel to another worker; NULL when out of memory. */
static request_t *request_copy(const request_t *r)
{
    request_t *c = malloc(sizeof(*c) + r->klen + r->vlen);
    if (!c)
        return NULL;
    *c = *r;
    c->key = memcpy(c->data, r->key, r->klen);
    c->value = memcpy(c->data + r->klen, r->value, r->vlen);
    return c;
}

static void request_free(request_t *r)
{
    if (r)
        free(r->answer.big);
    free(r);
}

/*
 * The forwarded requests of one read for one owner, sent as one cross-shard
 * call: a client that pipelines costs one call per owner and read, not one
 * per request. It lists the requests' pending entries (which hold the
 * requests); the owner writes each answer into its request, and the caller
 * frees the batch once the call's future is done (on_batch).
 */
struct pending;
typedef struct batch {
    struct conn *c;
    size_t n, cap;
    struct pending *pend[];
} batch_t;

static int apply_pending(cio_service_ctx_t *ctx, struct pending *p);

/* The cross-shard call's function, on the owner: every request of the batch. */
static int apply_batch(cio_service_ctx_t *ctx, void *arg, void **result)
{
    batch_t *b = arg;
    for (size_t i = 0; i < b->n; i++)
        apply_pending(ctx, b->pend[i]);
    return 0;
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

/*
 * An answer not written yet: a forwarded request (its future settles when
 * the owner has written the answer into it), STATS's future, or a local
 * answer waiting behind them.
 */
typedef struct pending {
    struct pending *next;
    request_t *req;    /* forwarded: the request, in this entry's memory (after it) */
    cio_future_t *fut; /* STATS's */
    int err;           /* forwarded: the call's error, or 0 */
    bool done;         /* forwarded: its batch is back (on_batch) */
    answer_t answer;   /* a local answer */
    size_t room;       /* bytes of key and value the request after the entry can hold */
} pending_t;

#define ROOM_SMALL 256 /* the room of entries kept for reuse */
#define POOL_MAX   64  /* entries a connection keeps for reuse */

/* On the owner: @p p's request (the caller does not touch it until fut is done). */
static int apply_pending(cio_service_ctx_t *ctx, pending_t *p)
{
    if (apply(ctx, p->req) < 0) /* the short answer fits inline: no allocation */
        answer_set(&p->req->answer, "ERR out of memory", "", 0);
    return 0;
}

typedef struct conn {
    cio_protocol_t base;
    cio_service_ctx_t *ctx;
    cio_transport_t *t;
    cio_framer_t framer;
    pending_t *head, *tail;
    pending_t
        *pool; /* spare entries of ROOM_SMALL: no allocation per request in the steady state */
    size_t npool;
    batch_t **gather; /* per owner: the requests of this read to forward (NULL until needed) */
    char *out;        /* answers gathered for one write: one system call per read, not per answer */
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
    for (pending_t *p = c->pool, *next; p; p = next) {
        next = p->next;
        free(p);
    }
    free(c->gather);
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

/* Emit STATS's answer from the future's per-worker counts. */
static void emit_stats(conn_t *c, cio_future_t *fut)
{
    void **counts = NULL;
    char text[1024];
    size_t n = 0, total = 0, workers = cio_service_nworkers(c->ctx);
    if (cio_future_result(fut, (void **)&counts) < 0) {
        n = (size_t)snprintf(text, sizeof(text), "ERR %s\n", cio_strerror(cio_future_error(fut)));
    } else {
        for (size_t i = 0; i < workers; i++)
            total += (uintptr_t)counts[i];
        n = (size_t)snprintf(text, sizeof(text), "STATS keys=%zu shards=", total);
        for (size_t i = 0; i < workers && n < sizeof(text); i++)
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%zu", i ? "," : "",
                                  (size_t)(uintptr_t)counts[i]);
        n += n < sizeof(text) ? (size_t)snprintf(text + n, sizeof(text) - n, "\n") : 0;
    }
    emit(c, text, n < sizeof(text) ? n : sizeof(text) - 1);
}

/* Emit @p p's answer (out of memory: that answer is lost, as a failed write would lose it). */
static void emit_pending(conn_t *c, pending_t *p)
{
    char err[160];
    if (p->req && p->err == 0) { /* the owner wrote the answer into the request */
        emit(c, answer_text(&p->req->answer), p->req->answer.len);
    } else if (p->req) {
        int n = snprintf(err, sizeof(err), "ERR %s\n", cio_strerror(p->err));
        emit(c, err, (size_t)n);
    } else if (p->fut) {
        emit_stats(c, p->fut);
    } else {
        emit(c, answer_text(&p->answer), p->answer.len);
    }
}

/* Whether @p p's answer is known: a local one, a forwarded one back, STATS's done. */
static bool ready(const pending_t *p)
{
    return p->req ? p->done : p->fut ? cio_future_done(p->fut) : true;
}

static void pending_put(conn_t *c, pending_t *p);

/* Emit the answers that are ready, in order, up to the first still waiting. */
static void flush(conn_t *c)
{
    while (c->head && ready(c->head)) {
        pending_t *p = c->head;
        if (!c->lost)
            emit_pending(c, p);
        c->head = p->next;
        if (!c->head)
            c->tail = NULL;
        pending_put(c, p);
    }
    if (c->eof && !c->head && !c->lost) {
        send_out(c);
        cio_transport_close(c->t); /* after what is buffered is sent */
    }
}

/*
 * Write what was gathered once no answer is pending: the answers of one read
 * then leave in one write even when some were forwarded, rather than those
 * before the first forward at once and the rest when it is back. At most
 * OUT_HOLD bytes wait for that.
 */
static int send_when_idle(conn_t *c)
{
    return !c->head || c->outlen >= OUT_HOLD ? send_out(c) : 0;
}

static int on_answer(cio_future_t *fut, void *arg)
{
    conn_t *c = arg;
    flush(c);
    send_when_idle(c);
    conn_unref(c);
    return 0;
}

/* A new entry at the end of the queue, with room for @p data bytes of request; NULL when
 * out of memory. */
static pending_t *enqueue(conn_t *c, size_t data)
{
    pending_t *p = data <= ROOM_SMALL ? c->pool : NULL;
    if (p) {
        c->pool = p->next;
        c->npool--;
    } else {
        size_t room = data <= ROOM_SMALL ? ROOM_SMALL : data;
        if (!(p = malloc(sizeof(*p) + sizeof(request_t) + room)))
            return NULL;
        p->room = room;
    }
    p->next = NULL;
    p->req = NULL;
    p->fut = NULL;
    p->err = 0;
    p->done = false;
    p->answer.len = 0; /* its text is written only with its length */
    p->answer.big = NULL;
    if (c->tail)
        c->tail->next = p;
    else
        c->head = p;
    c->tail = p;
    return p;
}

/* Release what @p p holds, and keep it for reuse if it is of the pooled size. */
static void pending_put(conn_t *c, pending_t *p)
{
    free(p->answer.big);
    if (p->req)
        free(p->req->answer.big);
    cio_future_unref(p->fut);
    if (p->room == ROOM_SMALL && c->npool < POOL_MAX) {
        p->next = c->pool;
        c->pool = p;
        c->npool++;
    } else {
        free(p);
    }
}

/* Queue STATS's future @p fut (taken over); 0 or -ENOMEM. */
static int queue_future(conn_t *c, cio_future_t *fut)
{
    pending_t *p = enqueue(c, 0);
    if (!p || cio_future_add_done_callback(fut, on_answer, c) < 0) {
        cio_future_unref(fut);
        return -ENOMEM; /* the connection fails: an entry left without answer is harmless */
    }
    p->fut = fut;
    c->refs++;
    return 0;
}

/* A local answer (taken over): written with the others of this read, or queued behind
 * those pending. */
static int answer_here(conn_t *c, answer_t *a)
{
    pending_t *p = c->head ? enqueue(c, 0) : NULL;
    if (p) {
        p->answer = *a;
        return 0;
    }
    int rc = c->head ? -ENOMEM : emit(c, answer_text(a), a->len);
    free(a->big);
    return rc;
}

/* Add @p p to the forwarded requests of this read for @p owner; 0 or -ENOMEM. */
static int gather(conn_t *c, size_t owner, pending_t *p)
{
    if (!c->gather && !(c->gather = calloc(cio_service_nworkers(c->ctx), sizeof(*c->gather))))
        return -ENOMEM;
    batch_t *b = c->gather[owner];
    if (!b || b->n == b->cap) {
        size_t cap = b ? 2 * b->cap : 16;
        batch_t *nb = realloc(b, sizeof(*nb) + cap * sizeof(nb->pend[0]));
        if (!nb)
            return -ENOMEM;
        if (!b)
            *nb = (batch_t){.c = c};
        nb->cap = cap;
        c->gather[owner] = b = nb;
    }
    b->pend[b->n++] = p;
    return 0;
}

/* Run @p r here if this worker owns its key, else queue a copy for its owner's batch;
 * the answer keeps its place in the queue either way. */
static int dispatch(conn_t *c, request_t *r)
{
    shard_t *s = cio_service_state(c->ctx);
    size_t owner = owner_of(r->hash, cio_service_nworkers(c->ctx));
    cio_counter_add(s->requests, 1);
    if (owner == cio_service_worker(c->ctx)) {
        int rc = apply(c->ctx, r);
        return rc < 0 ? rc : answer_here(c, &r->answer);
    }
    cio_counter_add(s->forwarded, 1);
    pending_t *p = enqueue(c, r->klen + r->vlen);
    if (!p)
        return -ENOMEM;
    request_t *q = p->req = (request_t *)(p + 1);
    q->cmd = r->cmd; /* field by field: the answer's text is written only with its length */
    q->hash = r->hash;
    q->klen = r->klen;
    q->vlen = r->vlen;
    q->key = memcpy(q->data, r->key, r->klen);
    q->value = memcpy(q->data + r->klen, r->value, r->vlen);
    q->answer.len = 0;
    q->answer.big = NULL;
    return gather(c, owner, p);
}

/* A batch is back, or failed without running: its answers are in its requests. */
static int on_batch(cio_future_t *fut, void *arg)
{
    batch_t *b = arg;
    conn_t *c = b->c;
    int err = cio_future_error(fut);
    for (size_t k = 0; k < b->n; k++) {
        b->pend[k]->err = err;
        b->pend[k]->done = true;
    }
    free(b); /* the owner is done with it; the requests belong to their entries */
    return on_answer(fut, c);
}

/* Send each owner its batch of this read, one cross-shard call each. Out of memory, the
 * connection fails; a batch its owner may still run is never freed early (it leaks). */
static int send_batches(conn_t *c)
{
    int rc = 0;
    for (size_t i = 0; c->gather && i < cio_service_nworkers(c->ctx); i++) {
        batch_t *b = c->gather[i];
        c->gather[i] = NULL;
        cio_future_t *f =
            b && rc == 0 ? cio_service_submit_to(c->ctx, i, apply_batch, b, NULL, NULL) : NULL;
        if (!f) {
            free(b); /* never sent: its entries never get an answer, the connection fails */
            rc = b ? -ENOMEM : rc;
            continue;
        }
        if (cio_future_add_done_callback(f, on_batch, b) < 0)
            rc = -ENOMEM;
        else
            c->refs++;
        cio_future_unref(f);
    }
    return rc;
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
        return f ? queue_future(c, f) : -ENOMEM;
    }
    int cmd = cmdlen == 3 && memcmp(line, "SET", 3) == 0   ? CMD_SET
              : cmdlen == 3 && memcmp(line, "GET", 3) == 0 ? CMD_GET
              : cmdlen == 3 && memcmp(line, "DEL", 3) == 0 ? CMD_DEL
                                                           : -1;
    shard_t *s = cio_service_state(c->ctx);
    const char *err = cmd < 0                             ? "ERR unknown command"
                      : klen == 0 || klen > KEY_MAX       ? "ERR bad key"
                      : (cmd == CMD_SET) != (sp2 != NULL) ? "ERR wrong number of arguments"
                      : vlen > s->max_value               ? "ERR value too large"
                                                          : NULL;
    request_t r; /* field by field: the answer's text is written only with its length */
    r.cmd = cmd;
    r.key = key;
    r.value = value;
    r.klen = klen;
    r.vlen = vlen;
    r.answer.len = 0;
    r.answer.big = NULL;
    if (err)
        return answer_set(&r.answer, err, "", 0) < 0 ? -ENOMEM : answer_here(c, &r.answer);
    r.hash = hash_of(key, klen);
    return dispatch(c, &r);
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
    int batched = send_batches(c);
    int sent = send_when_idle(c);
    return rc < 0 ? rc : batched < 0 ? batched : sent;
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
    shard_t *s = cio_service_state(ctx);
    cio_framer_opts_t o = {.max_frame = 4 + 1 + KEY_MAX + 1 + s->max_value + 1};
    if (cio_framer_init(&c->framer, &o) < 0) {
        free(c);
        return NULL;
    }
    c->base.ops = &conn_ops;
    c->ctx = ctx;
    c->refs = 1;
    return &c->base;
}

/* ---- the UDP endpoint: INCR ------------------------------------------------------------------ */

typedef struct endpoint {
    cio_protocol_t base;
    cio_service_ctx_t *ctx;
    cio_transport_t *t;
    size_t refs;
    bool lost;
} endpoint_t;

/* An INCR on its way: the request and where its answer goes. */
typedef struct reply_to {
    endpoint_t *e;
    request_t *req;
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
    const answer_t *a = &r->req->answer;
    if (!r->e->lost && cio_future_error(fut) == 0)
        cio_transport_sendto(r->e->t, answer_text(a), a->len, (struct sockaddr *)&r->addr,
                             r->addrlen);
    cio_future_unref(fut);
    endpoint_unref(r->e);
    request_free(r->req);
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
    request_t q = {.cmd = CMD_INCR, .key = d + 5, .klen = len - 5, .value = ""};
    q.hash = hash_of(q.key, q.klen);
    size_t owner = owner_of(q.hash, cio_service_nworkers(e->ctx));
    shard_t *s = cio_service_state(e->ctx);
    cio_counter_add(s->requests, 1);
    cio_counter_add(s->forwarded, owner != cio_service_worker(e->ctx));
    /* Even a local INCR goes through the call: one path, and the answer after this returns. */
    reply_to_t *r = malloc(sizeof(*r));
    request_t *req = r ? request_copy(&q) : NULL;
    cio_future_t *f =
        req ? cio_service_submit_to(e->ctx, owner, apply_remote, req, NULL, NULL) : NULL;
    if (!f || cio_future_add_done_callback(f, on_incr, r) < 0) {
        request_free(req);
        free(r);
        cio_future_unref(f);
        return 0; /* dropped, as the network may drop it */
    }
    *r = (reply_to_t){.e = e, .req = req, .addrlen = addrlen};
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

/* The keys' values, read once per start or reconfigure rather than per request. */
static void read_keys(cio_service_ctx_t *ctx, shard_t *s)
{
    size_t n = cio_service_nworkers(ctx);
    s->share = ((size_t)cio_service_int(ctx, "max_keys") + n - 1) / n;
    s->max_value = cio_service_size(ctx, "max_value_size");
}

static int kv_start(cio_service_ctx_t *ctx, void **state)
{
    shard_t *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    read_keys(ctx, s);
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
    read_keys(ctx, state);
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
