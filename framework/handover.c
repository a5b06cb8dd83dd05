/*
 * framework/handover.c: the zero-loss restart. On SIGUSR2 the running coreiod
 * (the old one) starts its own binary again, with the same arguments and
 * COREIO_UPGRADE_FD naming one end of a SOCK_SEQPACKET socket pair, and sends
 * down it every listening socket it has (each worker's, the admin's, the
 * agent's) with SCM_RIGHTS, one message per socket:
 *
 *     "S" NUL id NUL name NUL protocol NUL balance NUL backlog NUL host NUL port NUL path NUL
 *     shared NUL worker NUL
 *
 * then "E" NUL. The new one puts them in its table of inherited sockets
 * (framework/inherit.c), starts, serving on those its listeners take (same
 * name, same address), and answers "R" NUL followed by the ids it took, each
 * NUL-terminated. The old one then lets go of those sockets without refusing
 * anything on them (the new process serves their queues), says so ("A" NUL),
 * drains what it took nothing of, and stops as on SIGTERM. Until that "A" the
 * new process holds the sockets as lent: if it stops first (it failed, or the
 * old one gave up on it), it closes them without refusing anything either.
 * No socket is closed while nobody serves it, so no queued connection is
 * lost. If the new process fails (it exits, or says nothing within
 * upgrade_timeout), the old one ends it and goes on; a stop asked for
 * meanwhile ends the wait at once, and the new process with it, before the
 * old one stops.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#define UPGRADE_ENV  "COREIO_UPGRADE_FD"
#define CHILD_FD     3    /* where the new process finds its end of the pair */
#define MSG_MAX      1024 /* a message: the fields below, each bounded by the config */
#define SEND_TIMEOUT 10   /* seconds the new process has to read what we send */
#define ID_MAX       11   /* an id in the answer: 10 digits and its NUL */
#define GROUP_MAX    16   /* sockets of one worker sent (one per address family, say) */
#define END_GRACE    5.0  /* seconds past drain_timeout a failed new process has to exit */
#define END_POLL     0.05 /* seconds between looks at whether it has */

extern char **environ;

/* ---- the message ---------------------------------------------------------------------- */

/* Append @p s and its NUL to @p buf (@p cap bytes, *@p len used); false when it does not fit. */
static bool put(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    if (*len + n > cap)
        return false;
    memcpy(buf + *len, s ? s : "", n);
    *len += n;
    return true;
}

/* One message with @p fd attached; 0 or -errno. */
static int send_with_fd(int chan, const char *buf, size_t len, int fd)
{
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } u = {0};
    struct iovec iov = {(void *)buf, len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        m.msg_control = u.space;
        m.msg_controllen = sizeof(u.space);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    return sendmsg(chan, &m, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* Send socket @p fd of worker @p worker under @p id, described by @p cfg; @p shared:
 * systemd keeps it too. */
static int send_socket(int chan, uint32_t id, const cio_config_listener_t *cfg, int fd,
                       size_t worker, bool shared)
{
    char buf[MSG_MAX], num[5][24];
    size_t len = 0;
    snprintf(num[0], sizeof(num[0]), "%u", id);
    snprintf(num[1], sizeof(num[1]), "%d", (int)cfg->protocol);
    snprintf(num[2], sizeof(num[2]), "%d", (int)cfg->balance);
    snprintf(num[3], sizeof(num[3]), "%d", cfg->backlog);
    snprintf(num[4], sizeof(num[4]), "%zu", worker);
    const char *f[] = {"S",       num[0],    cfg->name,          num[1], num[2], num[3], cfg->host,
                       cfg->port, cfg->path, shared ? "1" : "0", num[4]};
    bool ok = true;
    for (size_t i = 0; ok && i < sizeof(f) / sizeof(f[0]); i++)
        ok = put(buf, sizeof(buf), &len, f[i]);
    return ok ? send_with_fd(chan, buf, len, fd) : -EMSGSIZE;
}

/* Field @p i of the NUL-separated message @p buf (@p len bytes), or NULL. */
static const char *field(const char *buf, size_t len, size_t i)
{
    size_t at = 0;
    for (; i > 0 && at < len; i--)
        at += strnlen(buf + at, len - at) + 1;
    return at < len && memchr(buf + at, '\0', len - at) ? buf + at : NULL;
}

/* A decimal in [0, max] from @p s into *@p out. */
static bool number(const char *s, long max, long *out)
{
    char *end;
    errno = 0;
    long v = s && *s ? strtol(s, &end, 10) : -1;
    if (v < 0 || v > max || errno || *end)
        return false;
    *out = v;
    return true;
}

/* ---- the old process --------------------------------------------------------------------- */

/* What the old process sent, by id: the listener and worker, or NULL for its own. */
typedef struct sent {
    cio__listener_t *l;
    size_t worker;
} sent_t;

typedef struct upgrade {
    cio_app_t *app;
    int chan;
    pid_t pid;
    sent_t *sent;
    size_t nsent, cap;
} upgrade_t;

static int note_sent(upgrade_t *u, cio__listener_t *l, size_t worker)
{
    if (u->nsent == u->cap) {
        size_t cap = u->cap ? 2 * u->cap : 16;
        sent_t *v = realloc(u->sent, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        u->sent = v;
        u->cap = cap;
    }
    u->sent[u->nsent++] = (sent_t){l, worker};
    return 0;
}

/* The @p n sockets @p fds of listener @p l's worker @p worker (or of the app's own
 * listener described by @p cfg, @p l NULL). */
static int send_group(upgrade_t *u, cio__listener_t *l, const cio_config_listener_t *cfg,
                      size_t worker, const int *fds, size_t n)
{
    int rc = 0;
    for (size_t j = 0; j < n && rc == 0; j++)
        if ((rc = send_socket(u->chan, (uint32_t)u->nsent, cfg, fds[j], worker, l && l->shared)) ==
            0)
            rc = note_sent(u, l, worker);
    return rc;
}

/* The app's own listener @p s (admin or agent) as "@NAME" on @p host:@p port. */
static int send_own(upgrade_t *u, const char *name, cio_server_t *s, const char *host,
                    const char *port)
{
    int fds[GROUP_MAX];
    size_t n = s ? cio_server_sockets(s, fds, GROUP_MAX) : 0;
    cio_config_listener_t c = {.name = (char *)name, .host = (char *)host, .port = (char *)port};
    return send_group(u, NULL, &c, 0, fds, n < GROUP_MAX ? n : GROUP_MAX);
}

/* Every listening socket: each listener's, worker by worker, then the admin's and the agent's. */
static int send_all(upgrade_t *u)
{
    cio_app_t *app = u->app;
    int rc = 0, fds[GROUP_MAX];
    for (size_t i = 0; i < app->nls && rc == 0; i++) {
        cio__listener_t *l = app->ls[i];
        for (size_t w = 0; w < app->nworkers && rc == 0; w++) {
            size_t n = cio_sharded_sockets(l->sharded, w, fds, GROUP_MAX);
            rc = send_group(u, l, &l->cfg, w, fds, n < GROUP_MAX ? n : GROUP_MAX);
        }
    }
    const cio_config_t *c = app->cfg;
    if (rc == 0)
        rc = send_own(u, "@admin", app->admin, c->admin_host, c->admin_port);
    if (rc == 0)
        rc = send_own(u, "@agent", app->agent, c->agent_host, c->agent_port);
    return rc == 0 ? send_with_fd(u->chan, "E", 2, -1) : rc;
}

/* This process's environment with COREIO_UPGRADE_FD=3, and NOTIFY_SOCKET as the app
 * took it (the new process speaks to systemd): a new array; *@p notify is freed after. */
static char **child_env(const cio_app_t *app, char **notify)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 3, sizeof(*env));
    if (!env)
        return NULL;
    size_t k = 0, plen = strlen(UPGRADE_ENV "=");
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], UPGRADE_ENV "=", plen) != 0)
            env[k++] = environ[i];
    static char ours[] = UPGRADE_ENV "=3"; /* CHILD_FD */
    env[k++] = ours;
    *notify = NULL;
    if (app->notify_socket && asprintf(notify, "NOTIFY_SOCKET=%s", app->notify_socket) < 0) {
        free(env);
        return NULL;
    }
    env[k] = *notify;
    return env;
}

/* Start the new process with @p theirs as its descriptor 3 (and nothing else of ours). */
static int spawn_new(const cio_app_t *app, int theirs, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGPIPE); /* coreiod ignores it, as its parent did */
    char *notify;
    char **env = child_env(app, &notify);
    if (!env)
        return -ENOMEM;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, theirs, CHILD_FD);
    posix_spawnattr_init(&at);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *const *argv = (char *const *)app->opts.upgrade_argv;
    int rc = -posix_spawn(pid, argv[0], &fa, &at, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(env);
    free(notify);
    return rc;
}

/* The pair, with the child's end above CHILD_FD so that dup2 clears its close-on-exec. */
static int make_pair(int *mine, int *theirs)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    int high = fcntl(sv[1], F_DUPFD_CLOEXEC, CHILD_FD + 1);
    close(sv[1]);
    if (high < 0) {
        close(sv[0]);
        return -errno;
    }
    struct timeval tv = {.tv_sec = SEND_TIMEOUT};
    setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    *mine = sv[0];
    *theirs = high;
    return 0;
}

/* Wait (in the task) for the new process's answer into @p buf; its length or -errno. */
static ssize_t await_answer(upgrade_t *u, char *buf, size_t cap)
{
    int flags = fcntl(u->chan, F_GETFL);
    if (flags < 0 || fcntl(u->chan, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    cio_future_t *r = cio_loop_sock_recv_into(u->app->loop, u->chan, buf, cap);
    cio_future_t *w = r ? cio_wait_for(r, u->app->cfg->upgrade_timeout) : NULL;
    void *n = NULL;
    u->app->upgrading = w; /* a stop cancels it (app.c) */
    int rc = w ? cio_await(w, &n) : -ENOMEM;
    u->app->upgrading = NULL;
    cio_future_unref(w);
    cio_future_unref(r);
    if (rc < 0)
        return rc;
    return (uintptr_t)n ? (ssize_t)(uintptr_t)n : -EPIPE; /* EOF: it exited */
}

/* The answer "R" id... : the listeners' sockets it took live on there. All of it is
 * checked before any socket is marked: a bad answer changes nothing. */
static int apply_answer(upgrade_t *u, const char *buf, size_t len)
{
    const char *f = field(buf, len, 0);
    long id;
    if (!f || strcmp(f, "R") != 0)
        return -EPROTO;
    for (size_t i = 1; (f = field(buf, len, i)); i++)
        if (!number(f, (long)u->nsent - 1, &id))
            return -EPROTO;
    size_t taken = 0;
    for (size_t i = 1; (f = field(buf, len, i)); i++, taken++) {
        number(f, (long)u->nsent - 1, &id);
        if (u->sent[id].l)
            cio_sharded_handed_over(u->sent[id].l->sharded, u->sent[id].worker);
    }
    cio__log(CIO_LOG_INFO, "upgrade: process %ld took %zu of our %zu listening sockets",
             (long)u->pid, taken, u->nsent);
    return 0;
}

/*
 * The new process failed, or we stop: end it as we would be ended, SIGTERM
 * first (it may serve connections of its own already, which it then drains),
 * SIGKILL when it outlives its drain; it is reaped either way. The control
 * loop sleeps meanwhile, so our workers serve on.
 */
static void end_new(const cio_app_t *app, pid_t pid)
{
    int status;
    if (waitpid(pid, &status, WNOHANG) != 0)
        return;
    kill(pid, SIGTERM);
    for (double t = 0; t < app->cfg->drain_timeout + END_GRACE; t += END_POLL) {
        if (waitpid(pid, &status, WNOHANG) != 0)
            return;
        if (cio_sleep(END_POLL) < 0)
            break;
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
}

int cio__handover_upgrade(cio_app_t *app)
{
    upgrade_t u = {.app = app, .chan = -1};
    int theirs = -1;
    char *buf = NULL;
    int rc = app->opts.upgrade_argv ? make_pair(&u.chan, &theirs) : -ENOTSUP;
    if (rc == 0)
        rc = spawn_new(app, theirs, &u.pid);
    if (theirs >= 0)
        close(theirs);
    if (rc == 0 && (rc = send_all(&u)) == 0) {
        size_t cap = 2 + u.nsent * ID_MAX;
        ssize_t n = (buf = malloc(cap)) ? await_answer(&u, buf, cap) : -ENOMEM;
        rc = n < 0 ? (int)n : apply_answer(&u, buf, (size_t)n);
        if (rc == 0) /* lost, it leaves the new process holding them as lent: no harm */
            send_with_fd(u.chan, "A", 2, -1);
    }
    free(buf);
    if (rc < 0 && u.pid > 0)
        end_new(app, u.pid);
    if (rc == -ECANCELED)
        cio__log(CIO_LOG_INFO, "upgrade: stop requested; process %ld ended", (long)u.pid);
    else if (rc < 0)
        cio__log(CIO_LOG_ERROR, "upgrade failed, going on as before: %s", cio_strerror(rc));
    else
        cio__log(CIO_LOG_INFO, "upgrade: process %ld serves now; draining and stopping",
                 (long)u.pid);
    if (u.chan >= 0)
        close(u.chan);
    free(u.sent);
    return rc;
}

/* ---- the new process -------------------------------------------------------------------- */

/* One message and its descriptor (or -1) from @p chan; the length or -errno. */
static ssize_t recv_with_fd(int chan, char *buf, size_t cap, int *fd)
{
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } u;
    struct iovec iov = {buf, cap};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.space, .msg_controllen = sizeof(u)};
    ssize_t n = recvmsg(chan, &m, MSG_CMSG_CLOEXEC);
    *fd = -1;
    if (n < 0)
        return -errno;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int)))
        memcpy(fd, CMSG_DATA(c), sizeof(int));
    if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
        return -EPROTO;
    return n;
}

/* A socket message into the table (which takes @p fd), or -EPROTO. */
static int add_socket(cio__inherit_t *in, const char *buf, size_t len, int fd)
{
    long id, proto, balance, backlog, shared, worker;
    const char *name = field(buf, len, 2);
    if (fd < 0 || !name || !*name || !number(field(buf, len, 1), UINT32_MAX, &id) ||
        !number(field(buf, len, 3), CIO_CONFIG_UNIX, &proto) ||
        !number(field(buf, len, 4), CIO_BALANCE_HANDOFF, &balance) ||
        !number(field(buf, len, 5), 65535, &backlog) || !field(buf, len, 8) ||
        !number(field(buf, len, 9), 1, &shared) || !number(field(buf, len, 10), 1024, &worker))
        return -EPROTO;
    const char *host = field(buf, len, 6), *port = field(buf, len, 7), *path = field(buf, len, 8);
    cio_config_listener_t c = {.name = (char *)name,
                               .protocol = (cio_config_proto_t)proto,
                               .balance = (cio_balance_t)balance,
                               .backlog = (int)backlog,
                               .host = *host ? (char *)host : NULL,
                               .port = *port ? (char *)port : NULL,
                               .path = *path ? (char *)path : NULL};
    return cio__inherit_add(in, name, fd, (uint32_t)id, (size_t)worker, &c, shared);
}

/* Receive every socket from @p chan until "E". */
static int receive_all(int chan, cio__inherit_t *in)
{
    char buf[MSG_MAX];
    for (;;) {
        int fd;
        ssize_t n = recv_with_fd(chan, buf, sizeof(buf), &fd);
        int rc = n < 0 ? (int)n : n == 0 ? -EPIPE : 0;
        const char *kind = rc == 0 ? field(buf, (size_t)n, 0) : NULL;
        if (rc == 0 && kind && strcmp(kind, "E") == 0 && fd < 0)
            return 0;
        if (rc == 0)
            rc = kind && strcmp(kind, "S") == 0 ? add_socket(in, buf, (size_t)n, fd) : -EPROTO;
        if (rc < 0) {
            if (fd >= 0)
                close(fd);
            return rc;
        }
    }
}

int cio__handover_receive(cio__inherit_t *in, int *chan)
{
    const char *v = getenv(UPGRADE_ENV);
    long fd;
    *chan = -1;
    if (!v)
        return 0;
    bool ok = number(v, INT32_MAX, &fd);
    unsetenv(UPGRADE_ENV); /* our own children are no upgrade */
    if (!ok || fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0) {
        cio__log(CIO_LOG_ERROR, "upgrade: %s is not a descriptor", UPGRADE_ENV);
        return -EBADF;
    }
    struct timeval tv = {.tv_sec = SEND_TIMEOUT};
    setsockopt((int)fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int rc = receive_all((int)fd, in);
    if (rc < 0) {
        cio__log(CIO_LOG_ERROR, "upgrade: cannot receive the sockets: %s", cio_strerror(rc));
        close((int)fd);
        return rc;
    }
    cio__log(CIO_LOG_INFO, "upgrade: %zu listening socket%s from the running process", in->n,
             in->n == 1 ? "" : "s");
    *chan = (int)fd;
    return 0;
}

/* The old process has let go ("A"), or the channel ended: the sockets are ours alone
 * only in the first case. On the control loop. */
static int on_let_go(void *arg)
{
    cio_app_t *app = arg;
    char buf[8];
    ssize_t n = recv(app->upgrade_chan, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    bool let_go = n == 2 && memcmp(buf, "A", 2) == 0;
    cio__handover_forget(app);
    for (size_t i = 0; let_go && i < app->nls; i++)
        cio__listener_own(app->ls[i]);
    if (!let_go)
        cio__log(CIO_LOG_WARNING, "upgrade: the old process did not let go of its sockets");
    return 0;
}

void cio__handover_forget(cio_app_t *app)
{
    if (app->upgrade_chan < 0)
        return;
    cio_loop_remove_reader(app->loop, app->upgrade_chan);
    close(app->upgrade_chan);
    app->upgrade_chan = -1;
}

int cio__handover_ready(cio_app_t *app)
{
    const cio__inherit_t *in = &app->inherit;
    int chan = app->upgrade_chan;
    size_t cap = 2 + in->n * ID_MAX, len = 0;
    char *buf = malloc(cap);
    bool ok = buf && put(buf, cap, &len, "R");
    for (size_t i = 0; ok && i < in->n; i++) {
        char id[ID_MAX];
        snprintf(id, sizeof(id), "%u", in->v[i].id);
        ok = !in->v[i].taken || put(buf, cap, &len, id);
    }
    int rc = !buf ? -ENOMEM : ok ? send_with_fd(chan, buf, len, -1) : -EMSGSIZE;
    free(buf);
    if (rc == 0)
        rc = cio_loop_add_reader(app->loop, chan, on_let_go, app);
    if (rc < 0) {
        cio__log(CIO_LOG_ERROR, "upgrade: cannot answer the old process: %s", cio_strerror(rc));
        cio__handover_forget(app);
    }
    return rc;
}
