/*
 * loop/process.c: asyncio.subprocess for tasks. create_subprocess_exec
 * starts a child with a protocol of ours (asyncio's
 * SubprocessStreamProtocol) that buffers what the child writes to stdout and
 * stderr (a StreamReader each, pausing the pipe past twice the 64 KiB limit,
 * as asyncio's streams do) and tracks stdin's flow control, so that a task
 * can read to end of file, write with drain, and wait.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "internal.h"

#define READ_LIMIT (64 * 1024) /* asyncio's streams: _DEFAULT_LIMIT */

/* What the child wrote to one pipe and the task has not read yet. */
typedef struct reader {
    uint8_t *buf;
    size_t head, len, cap;
    bool eof;
    int err;              /* the pipe's error, reported once the data is read */
    bool paused;          /* the pipe's reading is paused: too much is waiting */
    cio_future_t *waiter; /* the reading task's, while it waits */
} reader_t;

struct cio_process {
    cio_protocol_t base; /* the subprocess protocol */
    cio_loop_t *loop;
    cio_subprocess_t *sp; /* NULL until connection_made and after connection_lost */
    pid_t pid;
    bool is_pipe[3];
    reader_t rd[3]; /* [1] stdout, [2] stderr */
    bool stdin_paused, stdin_lost;
    int stdin_err;
    cio_future_t *drain; /* the writing task's, while stdin is paused */
    bool made, lost;     /* connection_made, connection_lost have run */
    int returncode;      /* once lost */
    bool orphaned;       /* cio_process_free() was called: free at connection_lost */
    cio_future_t *outer; /* what create returned, until it is settled */
};

static void wake(cio_future_t *f)
{
    if (f && !cio_future_done(f))
        cio_future_set_result(f, NULL);
}

static void process_destroy(cio_process_t *p)
{
    for (int i = 1; i < 3; i++)
        free(p->rd[i].buf);
    cio_future_unref(p->outer);
    free(p);
}

/* ---- the protocol ------------------------------------------------------------------- */

static int on_made(cio_protocol_t *base, cio_transport_t *t)
{
    cio_process_t *p = (cio_process_t *)base;
    p->sp = cio_subprocess_from_transport(t);
    p->pid = cio_subprocess_get_pid(p->sp);
    p->made = true;
    return 0;
}

/* Keep @p len more bytes in @p r, at the end. */
static int reader_put(reader_t *r, const void *data, size_t len)
{
    if (r->head > 0 && r->head + r->len + len > r->cap) {
        memmove(r->buf, r->buf + r->head, r->len);
        r->head = 0;
    }
    if (r->len + len > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + len)
            cap *= 2;
        uint8_t *v = realloc(r->buf, cap);
        if (!v)
            return -ENOMEM;
        r->buf = v;
        r->cap = cap;
    }
    memcpy(r->buf + r->head + r->len, data, len);
    r->len += len;
    return 0;
}

static int on_pipe_data(cio_protocol_t *base, int fd, const void *data, size_t len)
{
    cio_process_t *p = (cio_process_t *)base;
    reader_t *r = &p->rd[fd];
    int rc = reader_put(r, data, len);
    if (rc < 0)
        return rc; /* the pipe closes with the error */
    if (r->len > 2 * READ_LIMIT && !r->paused) {
        r->paused = true;
        cio_transport_pause_reading(cio_subprocess_get_pipe_transport(p->sp, fd));
    }
    wake(r->waiter);
    return 0;
}

static int on_pipe_lost(cio_protocol_t *base, int fd, int err)
{
    cio_process_t *p = (cio_process_t *)base;
    if (fd == 0) {
        p->stdin_lost = true;
        p->stdin_err = err;
        wake(p->drain);
    } else {
        p->rd[fd].eof = true;
        p->rd[fd].err = err;
        wake(p->rd[fd].waiter);
    }
    return 0;
}

static int on_pause_writing(cio_protocol_t *base)
{
    ((cio_process_t *)base)->stdin_paused = true;
    return 0;
}

static int on_resume_writing(cio_protocol_t *base)
{
    cio_process_t *p = (cio_process_t *)base;
    p->stdin_paused = false;
    wake(p->drain);
    return 0;
}

static void on_lost(cio_protocol_t *base, int err)
{
    cio_process_t *p = (cio_process_t *)base;
    cio_subprocess_get_returncode(p->sp, &p->returncode);
    p->sp = NULL;
    p->lost = true;
    /* Orphaned, or the loop closed before the creation future was settled. */
    if (p->orphaned || (p->outer && cio_loop_is_closed(p->loop)))
        process_destroy(p);
}

static const cio_protocol_ops_t process_ops = {
    .connection_made = on_made,
    .connection_lost = on_lost,
    .pause_writing = on_pause_writing,
    .resume_writing = on_resume_writing,
    .pipe_data_received = on_pipe_data,
    .pipe_connection_lost = on_pipe_lost,
};

/* ---- creating ----------------------------------------------------------------------- */

static cio_protocol_t *own_protocol(void *arg)
{
    return arg;
}

/* The subprocess transport's future is done: settle ours with the process. */
static int on_started(cio_future_t *inner, void *arg)
{
    cio_process_t *p = arg;
    cio_future_t *outer = p->outer;
    p->outer = NULL;
    int rc = cio_future_result(inner, NULL);
    if (rc == 0 && !cio_future_done(outer))
        cio_future_set_result(outer, p);
    else if (!cio_future_done(outer))
        cio_future_set_error(outer, rc, cio_future_error_message(inner));
    if (rc < 0 || cio_future_cancelled(outer))
        cio_process_free(p); /* nobody else will */
    cio_future_unref(outer);
    cio_future_unref(inner);
    return 0;
}

cio_future_t *cio_create_subprocess_exec(cio_loop_t *loop, const char *program, char *const argv[],
                                         const cio_subprocess_opts_t *opts)
{
    cio_process_t *p = loop ? calloc(1, sizeof(*p)) : NULL;
    if (!p)
        return NULL;
    p->base.ops = &process_ops;
    p->loop = loop;
    for (int i = 0; i < 3; i++)
        p->is_pipe[i] = !opts || opts->stdio[i].mode == CIO_STDIO_PIPE;
    cio_future_t *inner = NULL;
    if (!(p->outer = cio_loop_create_future(loop)) ||
        !(inner = cio_loop_subprocess_exec(loop, own_protocol, p, program, argv, opts))) {
        process_destroy(p);
        return NULL;
    }
    cio_future_t *outer = cio_future_ref(p->outer);
    if (cio_future_add_done_callback(inner, on_started, p) < 0) {
        /* Cancelled before it starts, the child is killed and the factory never runs. */
        cio_future_cancel(inner, NULL);
        cio_future_unref(inner);
        cio_future_unref(outer);
        process_destroy(p);
        return NULL;
    }
    return outer;
}

cio_future_t *cio_create_subprocess_shell(cio_loop_t *loop, const char *cmd,
                                          const cio_subprocess_opts_t *opts)
{
    if (!cmd)
        return NULL;
    char sh[] = "/bin/sh", opt[] = "-c"; /* argv is not const in C */
    char *const argv[] = {sh, opt, (char *)cmd, NULL};
    return cio_create_subprocess_exec(loop, "/bin/sh", argv, opts);
}

/* ---- inside a task -------------------------------------------------------------------- */

/* Wait on a fresh future stored in *@p slot until someone wakes it. */
static int await_slot(cio_loop_t *loop, cio_future_t **slot)
{
    if (*slot)
        return -EBUSY; /* another task waits already (asyncio: RuntimeError) */
    if (!(*slot = cio_loop_create_future(loop)))
        return -ENOMEM;
    int rc = cio_await(*slot, NULL);
    cio_future_unref(*slot);
    *slot = NULL;
    return rc;
}

ssize_t cio_process_read(cio_process_t *p, int fd, void *buf, size_t len)
{
    if (fd < 1 || fd > 2 || !p->is_pipe[fd])
        return -EBADF;
    reader_t *r = &p->rd[fd];
    while (r->len == 0 && !r->eof) {
        int rc = await_slot(p->loop, &r->waiter);
        if (rc < 0)
            return rc;
    }
    if (r->len == 0)
        return r->err; /* end of file: 0, or the error the pipe ended with */
    size_t n = len < r->len ? len : r->len;
    memcpy(buf, r->buf + r->head, n);
    r->head += n;
    r->len -= n;
    if (r->len == 0)
        r->head = 0;
    if (r->paused && r->len <= READ_LIMIT) {
        r->paused = false;
        cio_transport_t *t = p->sp ? cio_subprocess_get_pipe_transport(p->sp, fd) : NULL;
        if (t)
            cio_transport_resume_reading(t);
    }
    return (ssize_t)n;
}

int cio_process_write(cio_process_t *p, const void *data, size_t len)
{
    if (!p->is_pipe[0])
        return -EBADF;
    cio_transport_t *t = p->sp ? cio_subprocess_get_pipe_transport(p->sp, 0) : NULL;
    if (!t || p->stdin_lost)
        return -EPIPE;
    int rc = cio_transport_write(t, data, len);
    while (rc == 0 && p->stdin_paused && !p->stdin_lost)
        rc = await_slot(p->loop, &p->drain);
    /* Lost while bytes waited: the pipe says -EPIPE; lost after they went: 0. */
    return rc == 0 && p->stdin_lost ? p->stdin_err : rc;
}

int cio_process_close_stdin(cio_process_t *p)
{
    if (!p->is_pipe[0])
        return -EBADF;
    cio_transport_t *t = p->sp ? cio_subprocess_get_pipe_transport(p->sp, 0) : NULL;
    if (t)
        cio_transport_close(t);
    return 0;
}

int cio_process_wait(cio_process_t *p, int *code)
{
    if (p->lost) {
        *code = p->returncode;
        return 0;
    }
    cio_future_t *f = cio_subprocess_wait(p->sp);
    if (!f)
        return -ENOMEM;
    void *res = NULL;
    int rc = cio_await(f, &res);
    cio_future_unref(f);
    if (rc == 0)
        *code = (int)(intptr_t)res;
    return rc;
}

/* ---- the rest --------------------------------------------------------------------------- */

pid_t cio_process_get_pid(const cio_process_t *p)
{
    return p->pid;
}

int cio_process_get_returncode(const cio_process_t *p, int *code)
{
    if (p->lost) {
        *code = p->returncode;
        return 0;
    }
    return cio_subprocess_get_returncode(p->sp, code);
}

int cio_process_send_signal(cio_process_t *p, int sig)
{
    return p->sp ? cio_subprocess_send_signal(p->sp, sig) : -ESRCH;
}

void cio_process_free(cio_process_t *p)
{
    if (!p)
        return;
    if (!p->made || p->lost) {
        process_destroy(p);
        return;
    }
    p->orphaned = true;
    cio_subprocess_close(p->sp);
}
