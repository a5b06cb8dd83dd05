/*
 * framework/listener.c: one [listener] of the configuration, open on every
 * worker with the service instance it names. Each worker gets the listener's
 * own context (and listener_start's state, on the worker's thread), and the
 * sharded server's factory hands each new connection the context of the
 * worker it lands on. A listener with a tls_certificate has one TLS server
 * context, shared by its servers on every worker (OpenSSL contexts are
 * reference-counted and safe to share between threads); a reload gives it a
 * new one for the connections accepted from then on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coreio/tls.h"
#include "internal.h"

/* After the drain deadline, how long closed TLS connections get to send close_notify. */
#define TLS_CLOSE_GRACE 1.0

/* The sharded server's factory, on a worker: the service's, with this listener's context there. */
static cio_protocol_t *listener_factory(void *arg)
{
    cio__listener_t *l = arg;
    return l->inst->svc->factory(&l->ctx[cio__worker_index(l->app)]);
}

/* ---- per-worker state --------------------------------------------------------- */

static int init_task(void *arg, void **result)
{
    cio__listener_t *l = arg;
    size_t i = cio__worker_index(l->app);
    const cio_service_t *svc = l->inst->svc;
    l->ctx[i] = (struct cio_service_ctx){
        .inst = l->inst, .worker = i, .loop = cio_get_running_loop(), .listener = &l->cfg};
    int rc = svc->listener_start ? svc->listener_start(&l->ctx[i], &l->ctx[i].lstate) : 0;
    l->lstarted[i] = rc == 0;
    return rc;
}

static int drain_task(void *arg, void **result)
{
    cio__listener_t *l = arg;
    size_t i = cio__worker_index(l->app);
    if (l->inst->svc->drain && l->lstarted[i])
        l->inst->svc->drain(&l->ctx[i]);
    return 0;
}

static int teardown_task(void *arg, void **result)
{
    cio__listener_t *l = arg;
    size_t i = cio__worker_index(l->app);
    if (l->lstarted[i] && l->inst->svc->listener_stop)
        l->inst->svc->listener_stop(&l->ctx[i], l->ctx[i].lstate);
    l->lstarted[i] = false;
    return 0;
}

/* ---- the copy of the configuration ----------------------------------------------- */

/* The names are forgotten too: a failed copy clears again after a failed tls_copy(). */
static void tls_clear(cio_config_tls_t *t)
{
    free(t->certificate);
    free(t->key);
    free(t->ca);
    t->certificate = t->key = t->ca = NULL;
}

/* A copy of @p src's file names into @p dst (its other fields too); 0 or -ENOMEM. */
static int tls_copy(cio_config_tls_t *dst, const cio_config_tls_t *src)
{
    *dst = *src;
    dst->certificate = src->certificate ? strdup(src->certificate) : NULL;
    dst->key = src->key ? strdup(src->key) : NULL;
    dst->ca = src->ca ? strdup(src->ca) : NULL;
    if ((src->certificate && !dst->certificate) || (src->key && !dst->key) ||
        (src->ca && !dst->ca)) {
        tls_clear(dst);
        return -ENOMEM;
    }
    return 0;
}

void cio__listener_cfg_clear(cio_config_listener_t *c)
{
    free(c->name);
    free(c->service);
    free(c->host);
    free(c->port);
    free(c->path);
    tls_clear(&c->tls);
    free(c->proxy_trusted);
}

/* A copy of @p n ranges; NULL for none, or when out of memory. */
static cio_cidr_t *ranges_copy(const cio_cidr_t *v, size_t n)
{
    cio_cidr_t *copy = n ? malloc(n * sizeof(*copy)) : NULL;
    if (copy)
        memcpy(copy, v, n * sizeof(*copy));
    return copy;
}

int cio__listener_cfg_copy(cio_config_listener_t *dst, const cio_config_listener_t *src)
{
    *dst = *src;
    dst->name = src->name ? strdup(src->name) : NULL;
    dst->service = src->service ? strdup(src->service) : NULL;
    dst->host = src->host ? strdup(src->host) : NULL;
    dst->port = src->port ? strdup(src->port) : NULL;
    dst->path = src->path ? strdup(src->path) : NULL;
    dst->proxy_trusted = ranges_copy(src->proxy_trusted, src->nproxy_trusted);
    dst->tls = (cio_config_tls_t){0};
    if ((src->name && !dst->name) || (src->service && !dst->service) || (src->host && !dst->host) ||
        (src->port && !dst->port) || (src->path && !dst->path) ||
        (src->nproxy_trusted && !dst->proxy_trusted) || tls_copy(&dst->tls, &src->tls)) {
        cio__listener_cfg_clear(dst);
        return -ENOMEM;
    }
    return 0;
}

/* ---- TLS ---------------------------------------------------------------------------- */

/* O_NONBLOCK: a FIFO must not hang the check, nor OpenSSL after it (one is refused here). */
int cio__file_readable(const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    int rc = fstat(fd, &st) < 0     ? -errno
             : S_ISDIR(st.st_mode)  ? -EISDIR
             : !S_ISREG(st.st_mode) ? -EINVAL
                                    : 0;
    close(fd);
    return rc;
}

/* Each file @p t names can be read; else its -errno, and *@p key says which. */
static int tls_files_readable(const cio_config_tls_t *t, const char **key)
{
    int rc;
    *key = "tls_certificate";
    if ((rc = cio__file_readable(t->certificate)) < 0)
        return rc;
    *key = "tls_key";
    if (!t->key || (rc = cio__file_readable(t->key)) < 0)
        return t->key ? rc : -EINVAL;
    *key = "tls_ca";
    return t->ca ? cio__file_readable(t->ca) : 0;
}

int cio__listener_tls_context(const cio_config_listener_t *cfg, SSL_CTX **out, const char **key)
{
    const cio_config_tls_t *t = &cfg->tls;
    SSL_CTX *ctx = NULL;
    *out = NULL;
    if (!t->certificate)
        return 0;
    int rc = tls_files_readable(t, key);
    if (rc == 0) {
        rc = cio_tls_server_context(&ctx, t->certificate, t->key);
        /* The key's own errors are the key's; a file that vanished since is blamed on the first. */
        *key = rc == CIO_ETLSBADKEY || rc == CIO_ETLSKEYMISMATCH ? "tls_key" : "tls_certificate";
    }
    if (rc == 0 && t->verify_client != CIO_CONFIG_VERIFY_NO) {
        *key = "tls_ca";
        rc = cio_tls_context_verify_clients(ctx, t->ca, t->verify_client == CIO_CONFIG_VERIFY_YES);
    }
    if (rc == 0) {
        *key = "tls_min_version";
        int v = t->min_version == CIO_CONFIG_TLS13 ? TLS1_3_VERSION : TLS1_2_VERSION;
        rc = SSL_CTX_set_min_proto_version(ctx, v) == 1 ? 0 : CIO_ETLSVERSION;
    }
    if (rc < 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

/* The file @p key names in @p t, for messages. */
static const char *tls_file(const cio_config_tls_t *t, const char *key)
{
    const char *f = strcmp(key, "tls_key") == 0  ? t->key
                    : strcmp(key, "tls_ca") == 0 ? t->ca
                                                 : t->certificate;
    return f ? f : "";
}

/* The context of @p cfg into *@p out, or an error logged as the listener's. */
static int tls_context_logged(const cio_config_listener_t *cfg, SSL_CTX **out)
{
    const char *key = "tls_certificate";
    int rc = cio__listener_tls_context(cfg, out, &key);
    if (rc < 0)
        cio__log(CIO_LOG_ERROR, "listener %s: %s: %s: %s", cfg->name, key, tls_file(&cfg->tls, key),
                 cio_strerror(rc));
    return rc;
}

/* Inside a task: release @p l and its reference on the service. */
static void listener_free(cio__listener_t *l)
{
    cio__instance_t *inst = l->inst;
    cio__listener_cfg_clear(&l->cfg);
    SSL_CTX_free(l->ssl);
    free(l->ctx);
    free(l->lstarted);
    free(l);
    if (inst)
        cio__instance_unref(inst);
}

/* ---- opening and draining ------------------------------------------------------------ */

/* Inside a task: wait for @p f (NULL: bad arguments) and release it. */
static int await_done(cio_future_t *f)
{
    int rc = f ? cio_await(f, NULL) : -EINVAL;
    cio_future_unref(f);
    return rc;
}

/* @p c's PROXY header options into *@p p (which keeps pointing at @p c's ranges); NULL: none. */
static const cio_proxy_opts_t *proxy_opts(const cio_config_listener_t *c, cio_proxy_opts_t *p)
{
    *p = (cio_proxy_opts_t){
        .versions = c->proxy_protocol, .trusted = c->proxy_trusted, .ntrusted = c->nproxy_trusted};
    return c->proxy_protocol ? p : NULL;
}

/* The sharded server's options for @p c, with the TLS context @p ssl (NULL: plaintext) and
 * the PROXY options @p proxy. */
static cio_sharded_opts_t sharded_opts(const cio_config_listener_t *c, SSL_CTX *ssl,
                                       const cio_proxy_opts_t *proxy)
{
    return (cio_sharded_opts_t){.type = c->protocol == CIO_CONFIG_UDP ? SOCK_DGRAM : SOCK_STREAM,
                                .balance = c->balance,
                                .backlog = c->backlog,
                                .path = c->protocol == CIO_CONFIG_UNIX ? c->path : NULL,
                                .idle_timeout = c->idle_timeout,
                                .write_high = c->write_high,
                                .write_low = c->write_low,
                                .ssl = ssl,
                                .ssl_handshake_timeout = ssl ? c->tls.handshake_timeout : 0,
                                .proxy = proxy};
}

/* "ADDRESS" of @p c as the logs show it: [V6]:PORT, *:PORT or the path. */
void cio__listener_address(const cio_config_listener_t *c, char *out, size_t size)
{
    if (c->path)
        snprintf(out, size, "%s", c->path);
    else if (c->host && strchr(c->host, ':'))
        snprintf(out, size, "[%s]:%s", c->host, c->port);
    else
        snprintf(out, size, "%s:%s", c->host ? c->host : "*", c->port);
}

/* A listener of @p cfg on @p inst, not open yet; NULL when out of memory. */
static cio__listener_t *listener_new(cio_app_t *app, const cio_config_listener_t *cfg,
                                     cio__instance_t *inst)
{
    size_t n = cio_workers_count(app->workers);
    cio__listener_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->app = app;
    l->ctx = calloc(n, sizeof(*l->ctx));
    l->lstarted = calloc(n, sizeof(*l->lstarted));
    if (!l->ctx || !l->lstarted || cio__listener_cfg_copy(&l->cfg, cfg) < 0) {
        free(l->ctx);
        free(l->lstarted);
        free(l);
        return NULL;
    }
    l->inst = cio__instance_ref(inst);
    return l;
}

int cio__listener_open(cio_app_t *app, const cio_config_listener_t *cfg, cio__instance_t *inst,
                       cio__listener_t *from, cio__listener_t **out)
{
    char where[CIO_CONFIG_LINE_MAX];
    cio__listener_t *l = listener_new(app, cfg, inst);
    if (!l)
        return -ENOMEM;
    cio__taken_t given = {0};
    int rc =
        from ? 0 : cio__inherit_take(&app->inherit, cfg, cio_workers_count(app->workers), &given);
    l->shared = from ? from->shared : given.shared;
    l->lent = !from && given.lent && !given.shared;
    if (rc == 0)
        rc = tls_context_logged(&l->cfg, &l->ssl);
    if (rc == 0)
        rc = cio__on_every_worker(l->app, init_task, l);
    if (rc == 0) {
        cio_proxy_opts_t proxy;
        cio_sharded_opts_t o = sharded_opts(&l->cfg, l->ssl, proxy_opts(&l->cfg, &proxy));
        o.adopt = from ? from->sharded : NULL;
        o.socks = given.fds;
        o.nsocks = given.n;
        o.socks_per_worker = given.per;
        o.socks_shared = l->shared || l->lent; /* a failed start leaves the old ones as they were */
        cio_future_t *f =
            cio_workers_serve(app->workers, listener_factory, l, l->cfg.host, l->cfg.port, &o);
        void *s = NULL;
        rc = f ? cio_await(f, &s) : -EINVAL;
        cio_future_unref(f);
        l->sharded = s;
    }
    free(given.fds);
    cio__listener_address(&l->cfg, where, sizeof(where));
    if (rc < 0) {
        cio__log(CIO_LOG_ERROR, "listener %s (%s on %s): cannot open: %s", l->cfg.name,
                 l->cfg.service, where, cio_strerror(rc));
        cio__on_every_worker(l->app, teardown_task, l);
        listener_free(l);
        return rc;
    }
    cio__log(CIO_LOG_INFO, "listener %s: %s on %s%s%s%s", l->cfg.name, l->cfg.service, where,
             l->ssl ? " (TLS)" : "", l->cfg.proxy_protocol ? " (PROXY)" : "",
             from      ? " (the same sockets)"
             : given.n ? " (inherited sockets)"
                       : "");
    *out = l;
    return 0;
}

void cio__listener_own(cio__listener_t *l)
{
    for (size_t w = 0; l->lent && w < l->app->nworkers; w++)
        cio_sharded_owned(l->sharded, w);
    l->lent = false;
}

int cio__listener_reconfigure(cio__listener_t *l, const cio_config_listener_t *cfg, SSL_CTX *ssl)
{
    cio_config_tls_t tls;
    cio_proxy_opts_t proxy;
    cio_sharded_opts_t o = sharded_opts(cfg, ssl, proxy_opts(cfg, &proxy));
    cio_cidr_t *trusted = ranges_copy(cfg->proxy_trusted, cfg->nproxy_trusted);
    int rc = cfg->nproxy_trusted && !trusted ? -ENOMEM : tls_copy(&tls, &cfg->tls);
    if (rc == 0 && (rc = await_done(cio_sharded_reconfigure(l->sharded, &o))) < 0)
        tls_clear(&tls);
    if (rc < 0) {
        free(trusted);
        cio__log(CIO_LOG_ERROR, "listener %s: cannot apply the new settings: %s", l->cfg.name,
                 cio_strerror(rc));
        SSL_CTX_free(ssl); /* every server took its own reference, if any took it */
        return rc;
    }
    l->cfg.backlog = cfg->backlog;
    l->cfg.idle_timeout = cfg->idle_timeout;
    l->cfg.write_high = cfg->write_high;
    l->cfg.write_low = cfg->write_low;
    l->cfg.proxy_protocol = cfg->proxy_protocol;
    free(l->cfg.proxy_trusted);
    l->cfg.proxy_trusted = trusted;
    l->cfg.nproxy_trusted = cfg->nproxy_trusted;
    /* Only the control loop reads the names; the workers' servers hold their own references. */
    tls_clear(&l->cfg.tls);
    l->cfg.tls = tls;
    SSL_CTX_free(l->ssl);
    l->ssl = ssl;
    if (ssl)
        cio__log(CIO_LOG_INFO, "listener %s: TLS certificate %s loaded for new connections",
                 l->cfg.name, tls.certificate);
    return 0;
}

/* Past the drain deadline: end the connections left. TLS ones are closed, which
 * sends close_notify, and only those still open a moment later are aborted. */
static void end_the_rest(cio__listener_t *l)
{
    int rc = -ETIMEDOUT;
    if (l->ssl) {
        cio_sharded_close_clients(l->sharded, false);
        cio_future_t *f = cio_sharded_wait_closed(l->sharded);
        cio_future_t *w = f ? cio_wait_for(f, TLS_CLOSE_GRACE) : NULL;
        rc = w ? cio_await(w, NULL) : -ENOMEM;
        cio_future_unref(w);
        cio_future_unref(f);
    }
    if (rc < 0)
        cio_sharded_close_clients(l->sharded, true);
    cio_future_t *f = cio_sharded_wait_closed(l->sharded);
    if (f)
        cio_await(f, NULL);
    cio_future_unref(f);
}

void cio__listener_drain_and_free(cio__listener_t *l, double drain_timeout)
{
    cio_future_t *f = cio_sharded_close(l->sharded);
    if (f) {
        cio_await(f, NULL);
        cio_future_unref(f);
    }
    cio__on_every_worker(l->app, drain_task, l);
    f = cio_sharded_wait_closed(l->sharded);
    cio_future_t *w = f ? cio_wait_for(f, drain_timeout) : NULL;
    int rc = w ? cio_await(w, NULL) : -ENOMEM;
    cio_future_unref(w);
    cio_future_unref(f);
    if (rc < 0) {
        size_t left = cio_sharded_connections(l->sharded, NULL, 0);
        if (left)
            cio__log(CIO_LOG_WARNING,
                     "listener %s: %zu connections still open after %.3g s: "
                     "closing them",
                     l->cfg.name, left, drain_timeout);
        end_the_rest(l);
    }
    cio_sharded_free(l->sharded);
    cio__on_every_worker(l->app, teardown_task, l);
    char where[CIO_CONFIG_LINE_MAX];
    cio__listener_address(&l->cfg, where, sizeof(where));
    cio__log(CIO_LOG_INFO, "listener %s: %s%s on %s drained and closed", l->cfg.name,
             l->replaced ? "the replaced " : "", l->cfg.service, where);
    listener_free(l);
}
