/*
 * coreio/subprocess.h: child processes (asyncio: loop.subprocess_exec,
 * loop.subprocess_shell, SubprocessTransport and SubprocessProtocol), and the
 * task helpers of asyncio.subprocess (create_subprocess_exec and its Process).
 *
 * Starting. The child is started with posix_spawn, or, when umask or
 * pass_fds is asked for, with clone(CLONE_VM|CLONE_VFORK) and exec as glibc's
 * posix_spawn does it (posix_spawn cannot set a umask, and keeps descriptors
 * only below a closefrom bound); never with a fork of the whole parent. It
 * sees descriptors 0-2 and pass_fds only, whatever the parent has open, the
 * rest closed with close_range, so the cost does not grow with RLIMIT_NOFILE.
 * Its signal mask is empty and every signal has its default disposition (the
 * parent's threads may block or ignore signals; SIGPIPE, which coreio
 * ignores, is the default again). Every descriptor coreio makes for the child
 * is CLOEXEC. A program that cannot be started (ENOENT, EACCES, a cwd that
 * does not exist) fails the future with that error: there is no child that
 * exits 127.
 *
 * Watching. Each child has a pidfd (Linux 5.3 and later) watched by the loop
 * that started it, reaped with waitid(P_PIDFD): no SIGCHLD handler, no
 * thread, and any number of loops may spawn at once. Signals go through
 * pidfd_send_signal, so a reused pid is never signalled. Where pidfd_open is
 * missing (ENOSYS, or EPERM from an older container's seccomp filter) a loop
 * polls instead: a timer, 1 ms after a spawn and backing off to 100 ms, calls
 * waitpid(pid, WNOHANG) for each of that loop's own children only, so it too
 * works with many loops; signals then go by pid, which cannot be reused
 * before coreio has reaped it. Both need that nothing else in the process
 * reaps children it did not start (waitpid(-1), SIGCHLD set to SIG_IGN): a
 * child reaped elsewhere reports returncode 255 with a warning, as asyncio.
 *
 * Callbacks, in the protocol's cio_protocol_ops_t (coreio/transport.h), in
 * asyncio's order (base_subprocess.py):
 *  - connection_made(p, t) first, with the subprocess transport as @p t: get
 *    the cio_subprocess_t with cio_subprocess_from_transport(t), which is only
 *    a checked cast (t is not a cio_transport_t; never pass it to the
 *    cio_transport_* functions). It runs before any other callback.
 *  - pipe_data_received(p, fd, data, len) for each read from the child's
 *    stdout (fd 1) or stderr (fd 2); pipe_connection_lost(p, fd, err) once per
 *    pipe, when the child closed it (err 0), on an error, or after close().
 *    pause_writing / resume_writing come from the stdin pipe's water marks.
 *  - process_exited(p) once, as soon as the child has exited and been reaped;
 *    pipes may still be open then (a grandchild may hold them), and pipe
 *    callbacks may follow it.
 *  - connection_lost(p, 0) last, once the child has exited AND every pipe is
 *    closed; the transport is freed right after it. A protocol may free
 *    itself there.
 * A callback returning a negative error is reported to the exception handler;
 * after pipe_data_received (or stdin's pause/resume_writing) that pipe closes
 * with the error, after connection_made (whose future then fails with it),
 * pipe_connection_lost or process_exited the subprocess transport is closed.
 *
 * Closing the loop kills (SIGKILL) and reaps every child still running, with
 * a warning, and the protocols hear pipe_connection_lost and connection_lost
 * (CIO_ECLOSED, or 0 if the child had finished and only the call was pending),
 * not process_exited: no zombie is left behind.
 *
 * Loop thread only, unless a function says otherwise.
 */
#ifndef COREIO_SUBPROCESS_H
#define COREIO_SUBPROCESS_H

#include <sys/types.h>

#include "coreio/common.h"
#include "coreio/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A SubprocessTransport: one child process and its pipes. */
typedef struct cio_subprocess_s cio_subprocess_t;

/** Where one of the child's standard descriptors goes. */
typedef enum cio_stdio_mode {
    CIO_STDIO_PIPE = 0, /* a pipe to the parent (asyncio's default for subprocess_exec) */
    CIO_STDIO_DEVNULL,  /* /dev/null */
    CIO_STDIO_FD,       /* the descriptor in @c fd, duplicated: the caller keeps it */
    CIO_STDIO_INHERIT,  /* the parent's own descriptor of that number (asyncio: None) */
    CIO_STDIO_STDOUT,   /* stderr only: wherever stdout goes */
} cio_stdio_mode_t;

typedef struct cio_stdio {
    cio_stdio_mode_t mode;
    int fd; /* CIO_STDIO_FD only */
} cio_stdio_t;

/** Options of subprocess_exec / subprocess_shell; NULL or all-zero: asyncio's defaults. */
typedef struct cio_subprocess_opts {
    cio_stdio_t stdio[3];   /* the child's stdin, stdout and stderr; default: three pipes */
    const char *cwd;        /* the child's working directory; NULL: the parent's */
    char *const *env;       /* "NAME=value" strings, NULL-terminated; NULL: the parent's */
    const int *pass_fds;    /* descriptors the child keeps, under the same numbers */
    size_t npass_fds;       /*   (inheritable in the child even if CLOEXEC here) */
    bool start_new_session; /* setsid() in the child */
    bool use_process_group; /* setpgid(0, process_group) in the child */
    pid_t process_group;    /*   0: a new group led by the child */
    bool use_umask;         /* umask(umask) in the child */
    mode_t umask;           /* (asyncio's umask=-1 is use_umask false) */
} cio_subprocess_opts_t;

/**
 * Start @p program with @p argv (asyncio: loop.subprocess_exec) and attach a
 * protocol from @p factory(@p factory_arg). A @p program without a '/' is
 * looked up in the parent's PATH; @p argv is the whole argument vector,
 * NULL-terminated (NULL: { program }). The child starts within this call,
 * which is the only one to read the arguments and options; the factory and
 * connection_made run later, from the loop. The future's result
 * is the cio_subprocess_t *, once connection_made has run; it fails with the
 * error of a child that could not start (-ENOENT, -EACCES, ...), -EMFILE, or
 * CIO_ECLOSED. Cancelling the future before connection_made kills the
 * child. The result is valid until connection_lost: a task resuming from its
 * await runs before that, but a quick child with no pipe open may be gone
 * once cio_loop_run_until_complete() returns (ask for what is needed in
 * connection_made instead). NULL for bad arguments (CIO_STDIO_STDOUT for
 * stdin or stdout, start_new_session with use_process_group, a negative
 * descriptor, no factory or program, a closed loop) or when out of memory.
 */
CIO_EXTERN cio_future_t *cio_loop_subprocess_exec(cio_loop_t *loop, cio_protocol_factory_t factory,
                                                  void *factory_arg, const char *program,
                                                  char *const argv[],
                                                  const cio_subprocess_opts_t *opts);

/** As cio_loop_subprocess_exec(), running @p cmd with "/bin/sh -c" (asyncio: subprocess_shell). */
CIO_EXTERN cio_future_t *cio_loop_subprocess_shell(cio_loop_t *loop, cio_protocol_factory_t factory,
                                                   void *factory_arg, const char *cmd,
                                                   const cio_subprocess_opts_t *opts);

/**
 * The subprocess transport that connection_made received as @p t, or NULL
 * if @p t is an ordinary transport.
 */
CIO_EXTERN cio_subprocess_t *cio_subprocess_from_transport(cio_transport_t *t);

/** The child's process id (once it is reaped, the number may be another process's). */
CIO_EXTERN pid_t cio_subprocess_get_pid(const cio_subprocess_t *sp);

/**
 * The pipe transport of the child's descriptor @p fd (0, 1 or 2), or NULL if
 * that descriptor is not a pipe or its pipe's connection_lost has run.
 */
CIO_EXTERN cio_transport_t *cio_subprocess_get_pipe_transport(const cio_subprocess_t *sp, int fd);

/**
 * The returncode in *@p code once the child has been reaped: its exit status,
 * or minus the signal that killed it (asyncio). Returns 0, or -EBUSY while
 * the child runs (or is not reaped yet).
 */
CIO_EXTERN int cio_subprocess_get_returncode(const cio_subprocess_t *sp, int *code);

/**
 * Send @p sig to the child: 0, -ESRCH once it has been reaped (never a
 * process that took over its pid), or the error of pidfd_send_signal.
 */
CIO_EXTERN int cio_subprocess_send_signal(cio_subprocess_t *sp, int sig);

/** cio_subprocess_send_signal(sp, SIGTERM). */
CIO_EXTERN int cio_subprocess_terminate(cio_subprocess_t *sp);

/** cio_subprocess_send_signal(sp, SIGKILL). */
CIO_EXTERN int cio_subprocess_kill(cio_subprocess_t *sp);

/**
 * Close the pipes (stdin after its buffer drains) and kill (SIGKILL) the
 * child if it is still running (asyncio: close). The callbacks that remain
 * follow, ending with connection_lost. Idempotent.
 */
CIO_EXTERN void cio_subprocess_close(cio_subprocess_t *sp);

/** Whether close() was called. */
CIO_EXTERN bool cio_subprocess_is_closing(const cio_subprocess_t *sp);

/** The protocol (asyncio: get_protocol). */
CIO_EXTERN cio_protocol_t *cio_subprocess_get_protocol(const cio_subprocess_t *sp);

/** Hand the callbacks to another protocol (asyncio: set_protocol); NULL is ignored. */
CIO_EXTERN void cio_subprocess_set_protocol(cio_subprocess_t *sp, cio_protocol_t *p);

/** The loop the subprocess belongs to. */
CIO_EXTERN cio_loop_t *cio_subprocess_get_loop(const cio_subprocess_t *sp);

/**
 * A future of the returncode (asyncio: the transport's _wait), as
 * (void *)(intptr_t)code: settled at once if the child has been reaped,
 * else right after connection_lost. The caller owns the reference. NULL when
 * out of memory.
 */
CIO_EXTERN cio_future_t *cio_subprocess_wait(cio_subprocess_t *sp);

/* ---- tasks: asyncio.subprocess ----------------------------------------------- */

/**
 * A child process for tasks (asyncio.subprocess.Process): its stdout and
 * stderr pipes are buffered, and read with cio_process_read(); stdin is
 * written with cio_process_write(). Reading pauses the pipe while 128 KiB are
 * buffered and not read (asyncio's StreamReader limit, twice 64 KiB), so a
 * child writing more than that blocks until the task reads: as in asyncio,
 * read what the child writes before waiting for it, or it can deadlock.
 */
typedef struct cio_process cio_process_t;

/**
 * Start a child as cio_loop_subprocess_exec() (asyncio:
 * create_subprocess_exec); the future's result is the cio_process_t *, which
 * the caller frees with cio_process_free(). NULL for bad arguments.
 */
CIO_EXTERN cio_future_t *cio_create_subprocess_exec(cio_loop_t *loop, const char *program,
                                                    char *const argv[],
                                                    const cio_subprocess_opts_t *opts);

/** As cio_create_subprocess_exec(), running @p cmd with "/bin/sh -c". */
CIO_EXTERN cio_future_t *cio_create_subprocess_shell(cio_loop_t *loop, const char *cmd,
                                                     const cio_subprocess_opts_t *opts);

/** The child's process id. */
CIO_EXTERN pid_t cio_process_get_pid(const cio_process_t *proc);

/**
 * Inside a task: read up to @p len bytes the child wrote to @p fd (1 or 2, a
 * pipe), waiting until there are some. Returns the count, 0 at end of file,
 * -EBADF if @p fd is not a pipe, the pipe's error, or the await's.
 */
CIO_EXTERN ssize_t cio_process_read(cio_process_t *proc, int fd, void *buf, size_t len);

/**
 * Inside a task: write @p len bytes to the child's stdin and wait while the
 * pipe's buffer is above its high-water mark (asyncio: write, then drain).
 * Returns 0, -EBADF if stdin is not a pipe, -EPIPE once it is closed (the
 * child may have exited), or the await's error.
 */
CIO_EXTERN int cio_process_write(cio_process_t *proc, const void *data, size_t len);

/** Close the child's stdin once what was written has gone: the child reads EOF. */
CIO_EXTERN int cio_process_close_stdin(cio_process_t *proc);

/**
 * Inside a task: wait until the child has exited and its pipes are closed,
 * and put its returncode in *@p code (asyncio: wait). Returns 0 or the
 * await's error.
 */
CIO_EXTERN int cio_process_wait(cio_process_t *proc, int *code);

/** The returncode, as cio_subprocess_get_returncode(). */
CIO_EXTERN int cio_process_get_returncode(const cio_process_t *proc, int *code);

/** Send @p sig to the child; -ESRCH once it has been reaped. */
CIO_EXTERN int cio_process_send_signal(cio_process_t *proc, int sig);

/**
 * Free @p proc: a child still running is killed and reaped by the loop
 * afterwards (asyncio would leave it running; coreio leaves no child
 * unreaped). NULL is ignored.
 */
CIO_EXTERN void cio_process_free(cio_process_t *proc);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_SUBPROCESS_H */
