/*
 * framework/inherit.c: the listening sockets this process was given instead
 * of binding its own, by systemd (socket activation) or by the coreiod it
 * replaces (framework/handover.c). Each has a name: a listener's, or "@admin"
 * or "@agent" for the app's own listeners (no listener name starts with '@'). A listener takes the
 * sockets of its name, in the order they came: one per worker, or one that every worker shares. A
 * socket from the old process also carries the old listener's address, and is taken only when the
 * new listener's is the same (a listener whose address changed binds anew, and the old process
 * drains the old socket). The table owns the descriptors; whoever takes one serves a copy, and the
 * table closes its own once the app has started.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <netinet/in.h>

#include "systemd.h"
#include "internal.h"

int cio__inherit_add(cio__inherit_t *in, const char *name, int fd, uint32_t id, size_t worker,
                     const cio_config_listener_t *cfg, bool shared)
{
    cio__inherited_t *v = realloc(in->v, (in->n + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    in->v = v;
    cio__inherited_t *e = &v[in->n];
    *e = (cio__inherited_t){
        .fd = fd, .id = id, .worker = worker, .described = cfg != NULL, .shared = shared};
    e->name = strdup(name);
    int rc = e->name ? 0 : -ENOMEM;
    if (rc == 0 && cfg)
        rc = cio__listener_cfg_copy(&e->cfg, cfg);
    if (rc < 0) {
        free(e->name);
        return rc;
    }
    in->n++;
    return 0;
}

/* The socket type and family @p cfg needs. */
static void wanted(const cio_config_listener_t *cfg, int *type, int *family)
{
    *type = cfg->protocol == CIO_CONFIG_UDP ? SOCK_DGRAM : SOCK_STREAM;
    *family = cfg->protocol == CIO_CONFIG_UNIX ? AF_UNIX : AF_UNSPEC;
}

/* Whether the systemd socket @p fd can serve @p cfg: its type, family and port. */
static int fits(int fd, const cio_config_listener_t *cfg)
{
    int type, family, t = 0;
    socklen_t len = sizeof(t);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    wanted(cfg, &type, &family);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &len) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return -errno;
    if (t != type || (family == AF_UNIX) != (ss.ss_family == AF_UNIX))
        return -EPROTOTYPE;
    if (family == AF_UNIX || !cfg->port || strcmp(cfg->port, "0") == 0)
        return 0;
    in_port_t port = ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port;
    return ntohs(port) == atoi(cfg->port) ? 0 : -EADDRNOTAVAIL;
}

/* Is @p e a socket @p cfg may take? Negative: it has the name but cannot serve it. */
static int matches(const cio__inherited_t *e, const cio_config_listener_t *cfg)
{
    if (e->taken || strcmp(e->name, cfg->name) != 0)
        return 0;
    if (!e->described)
        return fits(e->fd, cfg) < 0 ? -EPROTOTYPE : 1;
    cio_config_listener_t same = *cfg;
    same.backlog = e->cfg.backlog; /* listen(2) again changes a backlog in place */
    return cio_config_listener_same_socket(&e->cfg, &same) ? 1 : 0;
}

/* The first entry @p cfg may take, from @p i on: its index, in->n for none, or -errno. */
static ssize_t next_match(cio__inherit_t *in, const cio_config_listener_t *cfg, size_t i)
{
    for (; i < in->n; i++) {
        int m = matches(&in->v[i], cfg);
        if (m < 0) {
            cio__log(CIO_LOG_ERROR,
                     "listener %s: the socket given under its name is not a %s socket "
                     "on its address",
                     cfg->name, cfg->protocol == CIO_CONFIG_UDP ? "udp" : "stream");
            return m;
        }
        if (m)
            return (ssize_t)i;
    }
    return (ssize_t)in->n;
}

/* How many sockets of @p cfg's the first worker that had any had: a group's size. */
static ssize_t group_size(cio__inherit_t *in, const cio_config_listener_t *cfg)
{
    ssize_t first = next_match(in, cfg, 0), per = 0;
    for (ssize_t i = first; i >= 0 && (size_t)i < in->n; i = next_match(in, cfg, (size_t)i + 1)) {
        if (in->v[i].worker != in->v[first].worker)
            break;
        per++;
    }
    return first < 0 ? first : per;
}

int cio__inherit_take(cio__inherit_t *in, const cio_config_listener_t *cfg, size_t groups,
                      cio__taken_t *out)
{
    *out = (cio__taken_t){0};
    ssize_t per = group_size(in, cfg);
    if (per <= 0)
        return (int)per;
    size_t want = groups * (size_t)per;
    if (!(out->fds = malloc(want * sizeof(int))))
        return -ENOMEM;
    out->per = (size_t)per;
    ssize_t i = next_match(in, cfg, 0);
    for (; out->n < want && (size_t)i < in->n; i = next_match(in, cfg, (size_t)i + 1)) {
        in->v[i].taken = true;
        out->shared |= in->v[i].shared;
        out->lent |= in->v[i].described; /* described: an old coreiod's */
        out->fds[out->n++] = in->v[i].fd;
    }
    out->n -= out->n % out->per; /* whole groups only (the last ones are the old process's) */
    return 0;
}

int cio__inherit_own(cio__inherit_t *in, const char *name, const char *host, const char *port,
                     int *fds, size_t max, cio_server_opts_t *o)
{
    cio_config_listener_t c = {.name = (char *)name, .host = (char *)host, .port = (char *)port};
    cio__taken_t t;
    int rc = cio__inherit_take(in, &c, 1, &t);
    size_t n = t.n < max ? t.n : max;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if ((fds[i] = fcntl(t.fds[i], F_DUPFD_CLOEXEC, 0)) < 0)
            rc = -errno;
    free(t.fds);
    if (rc < 0 || n == 0)
        return rc;
    o->use_sock = true; /* a server takes what it is given: copies, the table keeps its own */
    o->socks = fds;
    o->nsocks = n;
    return 0;
}

void cio__inherit_release(cio__inherit_t *in)
{
    for (size_t i = 0; i < in->n; i++) {
        cio__inherited_t *e = &in->v[i];
        if (!e->taken && !e->described) /* the old process drains its own; systemd's are news */
            cio__log(CIO_LOG_WARNING, "socket \"%s\" from systemd: no listener of that name",
                     e->name);
        close(e->fd);
        free(e->name);
        if (e->described)
            cio__listener_cfg_clear(&e->cfg);
    }
    free(in->v);
    *in = (cio__inherit_t){0};
}

int cio__inherit_from_systemd(cio__inherit_t *in)
{
    int *fds = NULL;
    char **names = NULL;
    size_t n = 0;
    int rc = cio__sd_listen_fds(&fds, &names, &n);
    if (rc < 0) {
        cio__log(CIO_LOG_ERROR, "socket activation: %s", cio_strerror(rc));
        return rc;
    }
    size_t i = 0;
    for (; i < n && rc == 0; i++)
        rc = cio__inherit_add(in, names[i], fds[i], (uint32_t)i, i, NULL, true);
    for (size_t k = i - (rc < 0); rc < 0 && k < n; k++)
        close(fds[k]); /* the ones the table did not take */
    if (n && rc == 0)
        cio__log(CIO_LOG_INFO, "socket activation: %zu socket%s from systemd", n,
                 n == 1 ? "" : "s");
    cio__sd_listen_free(fds, names, n);
    return rc;
}
