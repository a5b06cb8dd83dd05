/*
 * loop/subprocess.c: the subprocess transport (asyncio's
 * BaseSubprocessTransport with its Read/WriteSubprocessPipeProto). A child
 * (loop/spawn.c), its watch (loop/child.c), and a pipe transport
 * (loop/pipe.c) for each of its standard descriptors that is a pipe, whose
 * protocol is a small one of ours that forwards to the subprocess protocol
 * with the descriptor's number.
 *
 * The order of callbacks is asyncio's: connection_made first, the pipes'
 * callbacks as they come, process_exited once the child is reaped, and
 * connection_lost (the _try_finish rule) only when the child has exited and
 * every pipe has closed. connection_made is scheduled before the pipe
 * transports are made, so it runs before they can read; connection_lost
 * goes in a slot reserved at creation, so it cannot fail to be scheduled.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* The first word of a subprocess; a transport's is its loop pointer, which this cannot be. */
#define SP_MAGIC 0x5355425052434553ULL

enum sp_state {
    SP_STARTING, /* the factory and connection_made have not run yet */
    SP_MADE,     /* the protocol hears everything from now on */
    SP_FAILED,   /* the start failed: no protocol callbacks, only cleanup */
};

/* The protocol of one pipe transport: forwards to the subprocess with its fd. */
typedef struct sp_pipe {
    cio_protocol_t base;
    cio_subprocess_t *sp;
    cio_transport_t *t; /* NULL unless the pipe is open */
    int fd;             /* the child's descriptor: 0, 1 or 2 */
} sp_pipe_t;

struct cio_subprocess_s {
    uint64_t magic; /* first: see cio_subprocess_from_transport() */
    cio_loop_t *loop;
    cio_protocol_t *protocol; /* NULL until the factory has run */
    cio_protocol_factory_t factory;
    void *factory_arg;
    cio_future_t *waiter; /* the creation future (our reference) */
    cio__child_t child;
    sp_pipe_t pipes[3];
    cio_future_t **waits; /* cio_subprocess_wait() futures to settle */
    size_t nwaits;
    uint32_t start_slot, lost_slot; /* reserved at creation */
    bool lost_reserved;             /* lost_slot not scheduled yet */
    uint8_t state;                  /* enum sp_state */
    bool closing;                   /* close() was called, or the start failed */
    bool finished;                  /* connection_lost is scheduled */
    cio__queue_t link;              /* in loop->subprocesses */
};

static const cio_subprocess_opts_t default_opts;

static void report(cio_subprocess_t *sp, int err, const char *message)
{
    cio_exception_context_t ctx;
    cio_exception_context_init(&ctx, message);
    ctx.error = err;
    ctx.protocol = sp->protocol;
    ctx.transport = sp;
    cio_loop_call_exception_handler(sp->loop, &ctx);
}

static const cio_protocol_ops_t *ops_of(const cio_subprocess_t *sp)
{
    return sp->protocol->ops;
}

/* ---- the end: connection_lost, then free ----------------------------------------- */

static void sp_free(cio_subprocess_t *sp)
{
    for (size_t i = 0; i < sp->nwaits; i++) {
        if (!cio_future_done(sp->waits[i]))
            cio_future_set_result(sp->waits[i], (void *)(intptr_t)sp->child.returncode);
        cio_future_unref(sp->waits[i]);
    }
    free(sp->waits);
    if (sp->lost_reserved)
        cio__slot_unreserve(sp->loop, sp->lost_slot);
    cio_future_unref(sp->waiter);
    cio__queue_remove(&sp->link);
    free(sp);
}

static int call_connection_lost(void *arg)
{
    cio_subprocess_t *sp = arg;
    if (sp->state == SP_MADE && ops_of(sp)->connection_lost)
        ops_of(sp)->connection_lost(sp->protocol, 0);
    sp_free(sp);
    return 0;
}

/* asyncio's _try_finish: connection_lost once the child is reaped and every pipe closed. */
static void try_finish(cio_subprocess_t *sp)
{
    if (sp->finished || !sp->child.exited || sp->state == SP_STARTING)
        return;
    for (int i = 0; i < 3; i++) {
        if (sp->pipes[i].t)
            return;
    }
    sp->finished = true;
    if (atomic_load(&sp->loop->closed))
        return; /* cio__subprocesses_destroy_all() delivers it */
    cio__slot_t proto = {.fn.cb = call_connection_lost, .arg = sp, .kind = CIO__SLOT_PLAIN};
    cio__slot_schedule_reserved(sp->loop, sp->lost_slot, &proto);
    sp->lost_reserved = false;
}

/* The start failed after the child was started: kill it, close the pipes, no callbacks. */
static void sp_fail(cio_subprocess_t *sp, int err, const char *message)
{
    sp->state = SP_FAILED;
    sp->closing = true;
    if (!cio_future_done(sp->waiter))
        cio_future_set_error(sp->waiter, err, message);
    for (int i = 0; i < 3; i++) {
        if (sp->pipes[i].t)
            cio_transport_abort(sp->pipes[i].t);
    }
    cio__child_signal(&sp->child, SIGKILL);
    try_finish(sp);
}

/* ---- what the child and the pipes report ------------------------------------------ */

static void deliver_exited(cio_subprocess_t *sp)
{
    if (sp->loop->debug)
        cio__log(CIO_LOG_INFO, "child process %d exited with returncode %d", (int)sp->child.pid,
                 sp->child.returncode);
    int rc = ops_of(sp)->process_exited ? ops_of(sp)->process_exited(sp->protocol) : 0;
    if (rc < 0) {
        report(sp, rc, "protocol.process_exited() failed");
        cio_subprocess_close(sp);
    }
}

static void on_child_exit(cio__child_t *c)
{
    cio_subprocess_t *sp = cio_container_of(c, cio_subprocess_t, child);
    if (sp->state == SP_STARTING)
        return; /* the start tells the protocol, after connection_made */
    if (sp->state == SP_MADE)
        deliver_exited(sp);
    try_finish(sp);
}

static int pipe_data_received(cio_protocol_t *p, const void *data, size_t len)
{
    sp_pipe_t *pp = (sp_pipe_t *)p;
    cio_subprocess_t *sp = pp->sp;
    if (sp->state != SP_MADE || !ops_of(sp)->pipe_data_received)
        return 0;
    /* An error closes this pipe through the pipe transport's fatal-error path. */
    return ops_of(sp)->pipe_data_received(sp->protocol, pp->fd, data, len);
}

static void pipe_connection_lost(cio_protocol_t *p, int err)
{
    sp_pipe_t *pp = (sp_pipe_t *)p;
    cio_subprocess_t *sp = pp->sp;
    pp->t = NULL;
    if (sp->state == SP_MADE && ops_of(sp)->pipe_connection_lost) {
        int rc = ops_of(sp)->pipe_connection_lost(sp->protocol, pp->fd, err);
        if (rc < 0) {
            report(sp, rc, "protocol.pipe_connection_lost() failed");
            cio_subprocess_close(sp);
        }
    }
    try_finish(sp);
}

/* stdin's water marks are the subprocess protocol's (asyncio forwards them too). */
static int pipe_pause_writing(cio_protocol_t *p)
{
    cio_subprocess_t *sp = ((sp_pipe_t *)p)->sp;
    if (sp->state != SP_MADE || !ops_of(sp)->pause_writing)
        return 0;
    return ops_of(sp)->pause_writing(sp->protocol);
}

static int pipe_resume_writing(cio_protocol_t *p)
{
    cio_subprocess_t *sp = ((sp_pipe_t *)p)->sp;
    if (sp->state != SP_MADE || !ops_of(sp)->resume_writing)
        return 0;
    return ops_of(sp)->resume_writing(sp->protocol);
}

static const cio_protocol_ops_t read_pipe_ops = {
    .data_received = pipe_data_received,
    .connection_lost = pipe_connection_lost,
};

static const cio_protocol_ops_t write_pipe_ops = {
    .connection_lost = pipe_connection_lost,
    .pause_writing = pipe_pause_writing,
    .resume_writing = pipe_resume_writing,
};

/* ---- starting ---------------------------------------------------------------------- */

/*
 * Scheduled at creation, before the pipe transports, so it runs first: make
 * the protocol, call connection_made, settle the creation future.
 */
static int start_protocol(void *arg)
{
    cio_subprocess_t *sp = arg;
    if (sp->state == SP_FAILED)
        return 0;
    if (cio_future_done(sp->waiter)) { /* the caller cancelled it */
        sp_fail(sp, -ECANCELED, NULL);
        return 0;
    }
    cio_protocol_t *p = sp->factory(sp->factory_arg);
    if (!p || !p->ops) {
        sp_fail(sp, -ENOMEM, "the protocol factory failed");
        return 0;
    }
    sp->protocol = p;
    sp->state = SP_MADE;
    int rc = p->ops->connection_made ? p->ops->connection_made(p, (cio_transport_t *)sp) : 0;
    if (rc < 0) {
        report(sp, rc, "protocol.connection_made() failed");
        cio_future_set_error(sp->waiter, rc, "protocol.connection_made() failed");
        cio_subprocess_close(sp);
    } else {
        cio_future_set_result(sp->waiter, sp);
    }
    if (sp->child.exited) { /* reaped before the protocol existed */
        deliver_exited(sp);
        try_finish(sp);
    }
    return 0;
}

static cio_subprocess_t *sp_new(cio_loop_t *loop, cio_protocol_factory_t factory, void *arg)
{
    cio_subprocess_t *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return NULL;
    sp->waiter = cio_loop_create_future(loop);
    if (!sp->waiter)
        goto err_free;
    if (cio__slot_reserve(loop, &sp->start_slot) < 0)
        goto err_future;
    if (cio__slot_reserve(loop, &sp->lost_slot) < 0)
        goto err_start;
    sp->magic = SP_MAGIC;
    sp->loop = loop;
    sp->factory = factory;
    sp->factory_arg = arg;
    sp->lost_reserved = true;
    cio__queue_init(&sp->link);
    for (int i = 0; i < 3; i++) {
        sp->pipes[i] =
            (sp_pipe_t){.base.ops = i == 0 ? &write_pipe_ops : &read_pipe_ops, .sp = sp, .fd = i};
    }
    return sp;

err_start:
    cio__slot_unreserve(loop, sp->start_slot);
err_future:
    cio_future_unref(sp->waiter);
err_free:
    free(sp);
    return NULL;
}

/* ---- the child's standard descriptors ------------------------------------------------ */

typedef struct stdio_fds {
    int child[3];  /* what the child gets as 0, 1, 2; -1: the parent's own */
    bool owned[3]; /* child[i] was made here: closed once the child has started */
    int parent[3]; /* the parent's end of each pipe, -1 for none */
    int devnull;   /* /dev/null, opened once for all three; owned by the first user */
} stdio_fds_t;

/* The child's descriptor @p i as @p io asks. */
static int stdio_one(stdio_fds_t *s, const cio_stdio_t *io, int i)
{
    int fds[2];
    switch (io->mode) {
    case CIO_STDIO_PIPE:
        if (pipe2(fds, O_CLOEXEC) < 0)
            return -errno;
        s->child[i] = fds[i == 0 ? 0 : 1];
        s->parent[i] = fds[i == 0 ? 1 : 0];
        s->owned[i] = true;
        break;
    case CIO_STDIO_DEVNULL:
        if (s->devnull < 0) {
            if ((s->devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
                return -errno;
            s->owned[i] = true;
        }
        s->child[i] = s->devnull;
        break;
    case CIO_STDIO_FD:
        s->child[i] = io->fd;
        break;
    case CIO_STDIO_INHERIT:
        break;
    case CIO_STDIO_STDOUT:
        s->child[i] = s->child[1] >= 0 ? s->child[1] : 1;
        break;
    }
    /* Below 3 (and not i), the child's dup2 of an earlier descriptor would overwrite it. */
    int fd = s->child[i];
    if (fd < 0 || fd >= 3 || fd == i)
        return 0;
    if ((s->child[i] = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
        return -errno;
    if (s->owned[i]) {
        close(fd);
        if (fd == s->devnull)
            s->devnull = s->child[i];
    }
    s->owned[i] = true;
    return 0;
}

static void stdio_close_child(stdio_fds_t *s)
{
    for (int i = 0; i < 3; i++) {
        if (s->owned[i] && s->child[i] >= 0)
            close(s->child[i]);
        s->owned[i] = false;
    }
}

static void stdio_close_parent(stdio_fds_t *s, int from)
{
    for (int i = from; i < 3; i++) {
        if (s->parent[i] >= 0)
            close(s->parent[i]);
        s->parent[i] = -1;
    }
}

static int stdio_open(stdio_fds_t *s, const cio_subprocess_opts_t *o)
{
    s->devnull = -1;
    for (int i = 0; i < 3; i++) {
        s->child[i] = s->parent[i] = -1;
        s->owned[i] = false;
    }
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = stdio_one(s, &o->stdio[i], i);
    if (rc < 0) {
        stdio_close_child(s);
        stdio_close_parent(s, 0);
    }
    return rc;
}

/* ---- launching ----------------------------------------------------------------------- */

/* The child runs: watch it, schedule the start, wrap the pipes (taking parent[]). */
static void attach(cio_subprocess_t *sp, pid_t pid, stdio_fds_t *s)
{
    int rc = cio__child_watch(sp->loop, &sp->child, pid, on_child_exit);
    cio__queue_insert_tail(&sp->loop->subprocesses, &sp->link);
    cio__slot_t proto = {.fn.cb = start_protocol, .arg = sp, .kind = CIO__SLOT_PLAIN};
    cio__slot_schedule_reserved(sp->loop, sp->start_slot, &proto);
    if (rc < 0) {
        cio__child_reap_now(&sp->child); /* unwatched: kill it and reap it here */
        stdio_close_parent(s, 0);
        sp_fail(sp, rc, "cannot watch the child process");
        return;
    }
    for (int i = 0; i < 3; i++) {
        if (s->parent[i] < 0)
            continue;
        rc = cio__pipe_transport_new(sp->loop, s->parent[i], i == 0, &sp->pipes[i].base, NULL,
                                     &sp->pipes[i].t);
        if (rc < 0) {
            sp->pipes[i].t = NULL;
            stdio_close_parent(s, i);
            sp_fail(sp, rc, "cannot make the pipe transports");
            return;
        }
    }
}

/* Free a subprocess whose child never started. */
static void sp_discard(cio_subprocess_t *sp)
{
    cio__slot_unreserve(sp->loop, sp->start_slot);
    sp_free(sp);
}

static cio_future_t *launch(cio_subprocess_t *sp, const char *program, char *const argv[],
                            const cio_subprocess_opts_t *o)
{
    cio_future_t *fut = cio_future_ref(sp->waiter);
    stdio_fds_t s;
    pid_t pid = 0;
    int rc = stdio_open(&s, o);
    if (rc == 0) {
        cio__child_spec_t spec = {.program = program,
                                  .argv = argv,
                                  .envp = o->env,
                                  .cwd = o->cwd,
                                  .pass_fds = o->pass_fds,
                                  .npass_fds = o->npass_fds,
                                  .new_session = o->start_new_session,
                                  .set_pgid = o->use_process_group,
                                  .pgid = o->process_group,
                                  .set_umask = o->use_umask,
                                  .umask = o->umask};
        memcpy(spec.stdio, s.child, sizeof(spec.stdio));
        rc = cio__spawn_child(&spec, &pid);
        stdio_close_child(&s);
    }
    if (rc == 0) {
        attach(sp, pid, &s);
        return fut;
    }
    stdio_close_parent(&s, 0);
    char message[256];
    snprintf(message, sizeof(message), "cannot start %s: %s", program, cio_strerror(rc));
    cio_future_set_error(sp->waiter, rc, message);
    sp_discard(sp);
    return fut;
}

static bool opts_valid(const cio_subprocess_opts_t *o)
{
    for (int i = 0; i < 3; i++) {
        cio_stdio_mode_t m = o->stdio[i].mode;
        if (m > CIO_STDIO_STDOUT || (m == CIO_STDIO_STDOUT && i != 2) ||
            (m == CIO_STDIO_FD && o->stdio[i].fd < 0))
            return false;
    }
    if (o->start_new_session && o->use_process_group) /* setsid makes a group of its own */
        return false;
    if (o->npass_fds > 0 && !o->pass_fds)
        return false;
    for (size_t i = 0; i < o->npass_fds; i++) {
        if (o->pass_fds[i] < 0)
            return false;
    }
    return true;
}

cio_future_t *cio_loop_subprocess_exec(cio_loop_t *loop, cio_protocol_factory_t factory,
                                       void *factory_arg, const char *program, char *const argv[],
                                       const cio_subprocess_opts_t *opts)
{
    if (!opts)
        opts = &default_opts;
    if (!loop || !factory || !program || !opts_valid(opts) || atomic_load(&loop->closed))
        return NULL;
    assert(!cio__wrong_thread(loop));
    char *const only_program[] = {(char *)program, NULL};
    cio_subprocess_t *sp = sp_new(loop, factory, factory_arg);
    if (!sp)
        return NULL;
    return launch(sp, program, argv ? argv : only_program, opts);
}

cio_future_t *cio_loop_subprocess_shell(cio_loop_t *loop, cio_protocol_factory_t factory,
                                        void *factory_arg, const char *cmd,
                                        const cio_subprocess_opts_t *opts)
{
    if (!cmd)
        return NULL;
    char sh[] = "/bin/sh", opt[] = "-c"; /* argv is not const in C */
    char *const argv[] = {sh, opt, (char *)cmd, NULL};
    return cio_loop_subprocess_exec(loop, factory, factory_arg, "/bin/sh", argv, opts);
}

/* ---- the transport's methods --------------------------------------------------------- */

cio_subprocess_t *cio_subprocess_from_transport(cio_transport_t *t)
{
    uint64_t first;
    if (!t)
        return NULL;
    memcpy(&first, (const void *)t, sizeof(first));
    return first == SP_MAGIC ? (cio_subprocess_t *)(void *)t : NULL;
}

pid_t cio_subprocess_get_pid(const cio_subprocess_t *sp)
{
    return sp->child.pid;
}

cio_transport_t *cio_subprocess_get_pipe_transport(const cio_subprocess_t *sp, int fd)
{
    return fd >= 0 && fd < 3 ? sp->pipes[fd].t : NULL;
}

int cio_subprocess_get_returncode(const cio_subprocess_t *sp, int *code)
{
    if (!sp->child.exited)
        return -EBUSY;
    if (code)
        *code = sp->child.returncode;
    return 0;
}

int cio_subprocess_send_signal(cio_subprocess_t *sp, int sig)
{
    assert(!cio__wrong_thread(sp->loop));
    return cio__child_signal(&sp->child, sig);
}

int cio_subprocess_terminate(cio_subprocess_t *sp)
{
    return cio_subprocess_send_signal(sp, SIGTERM);
}

int cio_subprocess_kill(cio_subprocess_t *sp)
{
    return cio_subprocess_send_signal(sp, SIGKILL);
}

void cio_subprocess_close(cio_subprocess_t *sp)
{
    assert(!cio__wrong_thread(sp->loop));
    if (sp->closing)
        return;
    sp->closing = true;
    for (int i = 0; i < 3; i++) {
        if (sp->pipes[i].t)
            cio_transport_close(sp->pipes[i].t);
    }
    if (sp->child.exited)
        return;
    if (sp->loop->debug)
        cio__log(CIO_LOG_WARNING, "close running child process %d: kill", (int)sp->child.pid);
    cio__child_signal(&sp->child, SIGKILL);
}

bool cio_subprocess_is_closing(const cio_subprocess_t *sp)
{
    return sp->closing;
}

cio_protocol_t *cio_subprocess_get_protocol(const cio_subprocess_t *sp)
{
    return sp->protocol;
}

void cio_subprocess_set_protocol(cio_subprocess_t *sp, cio_protocol_t *p)
{
    if (p && sp->state == SP_MADE)
        sp->protocol = p;
}

cio_loop_t *cio_subprocess_get_loop(const cio_subprocess_t *sp)
{
    return sp->loop;
}

/* asyncio's _wait: the returncode at once if known, else once connection_lost has run. */
cio_future_t *cio_subprocess_wait(cio_subprocess_t *sp)
{
    cio_future_t *f = cio_loop_create_future(sp->loop);
    if (!f)
        return NULL;
    if (sp->child.exited) {
        cio_future_set_result(f, (void *)(intptr_t)sp->child.returncode);
        return f;
    }
    cio_future_t **v = realloc(sp->waits, (sp->nwaits + 1) * sizeof(*v));
    if (!v) {
        cio_future_unref(f);
        return NULL;
    }
    sp->waits = v;
    sp->waits[sp->nwaits++] = cio_future_ref(f);
    return f;
}

/*
 * The loop is closing, after its transports (so every pipe is closed): kill
 * and reap each child still running, and give each protocol its
 * connection_lost, as transports get theirs.
 */
void cio__subprocesses_destroy_all(cio_loop_t *loop)
{
    while (!cio__queue_empty(&loop->subprocesses)) {
        cio_subprocess_t *sp = cio_container_of(loop->subprocesses.next, cio_subprocess_t, link);
        if (!sp->child.exited) {
            cio__log(CIO_LOG_WARNING, "child process %d still running when its loop closed: killed",
                     (int)sp->child.pid);
            cio__child_reap_now(&sp->child);
        }
        for (int i = 0; i < 3; i++)
            assert(!sp->pipes[i].t);
        if (!cio_future_done(sp->waiter))
            cio_future_set_error(sp->waiter, CIO_ECLOSED, NULL);
        if (sp->state == SP_MADE && ops_of(sp)->connection_lost)
            ops_of(sp)->connection_lost(sp->protocol, sp->finished ? 0 : CIO_ECLOSED);
        sp_free(sp);
    }
}
