/*
 * loop/internal.h: what the files of loop/ share. The loop struct, the handle
 * slab and ready ring, the timer heap and the mailbox.
 */
#ifndef CIO_LOOP_INTERNAL_H
#define CIO_LOOP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "context.h"
#include "coreio.h"
#include "heap.h"
#include "queue.h"
/* After every header that includes system ones: allocations go through the failure hook. */
#include "alloc.h"

#define cio_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* asyncio's constants (base_events.py). */
#define CIO__MAX_SELECT_TIMEOUT    (24.0 * 3600.0) /* poll timeout cap, seconds */
#define CIO__MIN_SCHEDULED_TIMERS  100             /* compaction threshold, entries */
#define CIO__SLOW_CALLBACK_DEFAULT 0.1             /* seconds */

/* ---- handle slots --------------------------------------------------------- */

enum cio__slot_state {
    CIO__SLOT_FREE = 0,
    CIO__SLOT_READY,     /* in the ready ring */
    CIO__SLOT_TIMER,     /* in the timer heap */
    CIO__SLOT_CANCELLED, /* cancelled, still in the ring or heap until discarded */
    CIO__SLOT_RESERVED,  /* taken ahead of time by an object that will schedule it */
};

enum cio__slot_kind {
    CIO__SLOT_PLAIN = 0, /* fn.cb(arg) */
    CIO__SLOT_DONE,      /* fn.done(fut, arg), holding a reference to fut */
    CIO__SLOT_OWNED,     /* fn.cb(arg); release(arg) if discarded instead of run */
};

/* One scheduled callback. The generation changes whenever the slot is freed. */
typedef struct cio__slot {
    union {
        cio_callback_t cb;
        cio_done_cb done;
    } fn;
    union {
        void *arg;
        uint32_t next_free; /* free-list link while FREE */
    };
    union {
        cio_future_t *fut;      /* CIO__SLOT_DONE */
        cio_callback_t release; /* CIO__SLOT_OWNED */
    };
    uint32_t gen;
    uint8_t state;
    uint8_t kind;
    uint8_t in_heap;
} cio__slot_t;

typedef struct cio__slab {
    cio__slot_t *v;
    uint32_t cap;
    uint32_t free_head; /* UINT32_MAX when empty */
} cio__slab_t;

/* The ready queue: a FIFO ring of slot indexes, capacity a power of two. */
typedef struct cio__ring {
    uint32_t *v;
    uint32_t mask;
    uint32_t head;
    uint32_t len;
} cio__ring_t;

/* ---- mailbox --------------------------------------------------------------- */

typedef struct cio__mbox_node {
    _Atomic(struct cio__mbox_node *) next;
    cio_callback_t cb;
    cio_callback_t release; /* run instead of cb if the loop closes first */
    void *arg;
    struct cio__mbox_block *block; /* the block the node was carved from */
} cio__mbox_node_t;

/*
 * Vyukov's multi-producer single-consumer queue: producers exchange @head, the
 * loop consumes from @tail. @sleeping is set by the loop before it blocks in
 * poll; a producer that clears it writes the eventfd. The producers' line, the
 * read-mostly line and the consumer's line are kept apart so that a busy loop
 * and its producers do not steal each other's cache lines.
 */
typedef struct cio__mailbox {
    /* Written by every producer. */
    _Alignas(64) _Atomic(cio__mbox_node_t *) head;
    _Atomic unsigned senders; /* producers inside a push: closing waits for them */
    /* Read by producers, written rarely. */
    _Alignas(64) _Atomic int sleeping;
    _Atomic int closed;
    int efd;
    _Atomic uint64_t wakeups; /* eventfd writes */
    struct event *ev;
    _Atomic(struct cio__mbox_port *) port; /* made on first use; see cio__mailbox_port() */
    /* The loop's own. */
    _Alignas(64) cio__mbox_node_t *tail;
    cio__mbox_node_t sentinel;
    uint64_t received; /* messages drained */
} cio__mailbox_t;

/* ---- futures ---------------------------------------------------------------- */

enum cio__future_state { CIO__FUT_PENDING, CIO__FUT_RESULT, CIO__FUT_ERROR, CIO__FUT_CANCELLED };
enum cio__retry_state { CIO__RETRY_NONE, CIO__RETRY_RESERVED, CIO__RETRY_SCHEDULED };

typedef struct cio__done_entry {
    cio_done_cb cb;
    void *arg;
} cio__done_entry_t;

/* What a future embedded in a bigger object (task, gather) does differently. */
typedef struct cio__future_ops {
    bool (*cancel)(cio_future_t *fut, const char *message); /* replaces the plain cancel */
    void (*destroy)(cio_future_t *fut);                     /* frees the containing object */
    bool readonly; /* set_result/set_error are for the owner only (-EPERM) */
} cio__future_ops_t;

struct cio_future_s {
    const cio__future_ops_t *ops; /* NULL for plain futures */
    cio_loop_t *loop;
    unsigned refs;
    enum cio__future_state state;
    int err;
    void *result;
    void (*result_free)(void *result); /* the future owns its result when set */
    char *message;
    cio__done_entry_t *callbacks;
    size_t ncallbacks;
    size_t cap;
    cio__done_entry_t inline_cb[2];     /* most futures have one or two callbacks */
    struct cio_future_s *deferred_next; /* in loop->deferred while callbacks wait for memory */
};

/* ---- tasks ------------------------------------------------------------------ */

typedef struct cio__stack {
    void *lo; /* lowest usable address; the guard page lies below */
    size_t size;
} cio__stack_t;

enum cio__task_state {
    CIO__TASK_CREATED,   /* first step scheduled, function not started */
    CIO__TASK_SUSPENDED, /* started, switched out (awaiting or scheduled) */
    CIO__TASK_RUNNING,   /* on the CPU now */
    CIO__TASK_FINISHED,  /* function returned; outcome in rc/result */
};

struct cio_task_s {
    struct cio_future_s fut; /* first: a task is a future */
    cio_task_fn fn;
    void *arg;
    void (*free_arg)(void *arg); /* internal tasks: frees arg if fn never runs */
    enum cio__task_state state;
    int rc;       /* the function's return value */
    void *result; /* the function's result */
    cio__fiber_t fiber;
    cio__stack_t stack;
    cio_future_t *waiter; /* the future being awaited, with a reference */
    bool must_cancel;     /* cancel at the next resumption */
    bool unwinding;       /* its loop is closing: awaits fail at once */
    char *cancel_message;
    char *error_message;  /* carried by the future if the function fails */
    char *name;           /* NULL until asked for, when it is the default */
    unsigned long number; /* N of the default name "Task-N" */
    cio__queue_t link;    /* in loop->tasks while not finished */
};

/* ---- transports --------------------------------------------------------------- */

enum cio__transport_kind { CIO__STREAM, CIO__DGRAM };
enum cio__pipe_end { CIO__PIPE_NONE, CIO__PIPE_READ, CIO__PIPE_WRITE };

struct cio_transport_s {
    cio_loop_t *loop;
    cio_protocol_t *protocol;
    struct cio_server_s *server; /* the server that accepted it, or NULL */
    int fd;
    uint8_t kind;
    bool closing;         /* close() or a fatal error: no more reading */
    bool lost;            /* connection_lost is scheduled */
    bool lost_reserved;   /* lost_slot is still ours: connection_lost not scheduled yet */
    uint32_t lost_slot;   /* reserved at creation, so scheduling connection_lost cannot fail */
    uint32_t made_slot;   /* reserved at creation, so starting the transport cannot fail */
    bool paused;          /* pause_reading() */
    bool made;            /* connection_made has run: reading may start */
    bool eof;             /* write_eof() was called */
    bool protocol_paused; /* pause_writing() was called, resume_writing not yet */
    bool dgram_one;       /* not IP: its datagrams may not fit a batch slot; read one at a time */
    int lost_err;
    size_t high, low;                /* write buffer water marks */
    size_t dgram_bytes;              /* datagram payload bytes waiting in wbuf */
    struct sockaddr_storage *remote; /* a connected datagram endpoint's peer */
    socklen_t remote_len;
    unsigned pins;         /* sendfile in progress: free only once unpinned */
    bool freed;            /* connection_lost has run while pinned */
    bool sendfile_active;  /* writes are refused meanwhile */
    cio_future_t *drained; /* settled when the write buffer empties */
    /* The write buffer: bytes [whead, whead + wlen) of wbuf. */
    uint8_t *wbuf;
    size_t whead, wlen, wcap;
    cio_future_t *waiter; /* completed once connection_made ran (connections) */
    cio__queue_t link;    /* in loop->transports */
    double idle_timeout;  /* seconds without traffic before closing; 0: never */
    double last_io;       /* loop->now at the last byte read or sent */
    cio_handle_t idle_timer;
    struct cio__tls *tls; /* the TLS layer (loop/tls.c), or NULL for plaintext */
    struct cio__proxy *proxy; /* the PROXY header stage (loop/proxy.c), or NULL */
    bool proxy_pending;       /* its header is not in yet: reads go to it */
    /* A datagram endpoint's PROXY v2 (loop/proxy_dgram.c), or NULL. */
    struct cio__dgram_proxy *dproxy;
    /* Datagrams read past a pause (loop/dgram_read.c): [stash_head, +stash_len) of stash. */
    uint8_t *stash;
    size_t stash_head, stash_len;
    uint8_t pipe;         /* CIO__PIPE_READ or _WRITE for a pipe transport (loop/pipe.c), else 0 */
    bool sigpipe_ignored; /* a write pipe in a process that ignores SIGPIPE */
};

/* ---- the loop -------------------------------------------------------------- */

struct cio_loop_s {
    struct event_base *base;
    struct event *poll_timer; /* bounds the poll when a timer is due */
    cio__slab_t slab;
    cio__ring_t ready;
    cio__heap_t timers;
    size_t timers_cancelled; /* cancelled entries still in the heap */
    uint64_t timer_seq;
    cio__mailbox_t mailbox;

    _Atomic int running;
    _Atomic int closed;
    int stopping;
    bool debug;
    double slow_callback_duration;
    double clock_resolution;
    pthread_t thread; /* valid while running */

    uint64_t iterations;
    uint64_t callbacks;
    double now; /* the monotonic clock, read once per iteration after the poll */

    /* Traffic (loop/transport.c), for cio_loop_get_stats(). */
    uint64_t bytes_in, bytes_out;
    uint64_t accepted;  /* transports made by servers so far */
    size_t ntransports; /* transports open now */
    /* Refused PROXY connections (loop/proxy.c): logged at most a few a second. */
    double proxy_log_second;
    unsigned proxy_log_count;
    uint64_t proxy_log_dropped;

    /* Tasks (loop/task.c). */
    cio__fiber_t fiber; /* the loop thread's own stack while a task runs */
    cio_task_t *current_task;
    cio__queue_t tasks; /* every task not finished */
    cio_task_factory_t task_factory;
    void *task_factory_data;
    cio__stack_t *stack_pool; /* released default-size stacks */
    size_t stack_pool_len;
    cio__queue_t asyncgens; /* async generators started and not closed */

    /* Descriptors watched (loop/io.c), indexed by fd. */
    struct cio__io **io_by_fd;
    size_t io_cap;
    uint8_t *read_buf;                /* the one buffer every stream transport reads into */
    struct cio__dgram_batch *dgram_batch; /* datagram endpoints' recvmmsg slots (dgram_read.c) */
    cio__queue_t transports;          /* every transport not freed yet */
    cio__queue_t servers;             /* every server not freed yet */
    cio_executor_t *default_executor; /* set_default_executor; NULL: the process-wide one */
    size_t executor_jobs;             /* run_in_executor futures not settled yet */
    bool executor_shutdown;           /* shutdown_default_executor was called */
    cio_future_t *executor_idle;      /* settled when executor_jobs drops to 0 */

    /* Child processes (loop/subprocess.c, loop/child.c). */
    cio__queue_t subprocesses;    /* every subprocess transport not freed yet */
    cio__queue_t polled_children; /* children watched by polling (no pidfd) */
    cio_handle_t child_poll;      /* the polling timer, while it is armed */
    double child_poll_delay;      /* its current interval, seconds */

    /* Done futures whose callbacks could not be scheduled yet (loop/future.c). */
    cio_future_t *deferred, *deferred_tail;
    uint32_t retry_slot; /* runs the retry; taken with the loop's first done callback */
    uint8_t retry_state; /* CIO__RETRY_NONE, _RESERVED or _SCHEDULED */

    cio_exception_handler_t exc_handler;
    void *exc_arg;
};

/* @p in bytes were read and @p out sent on @p t: count them, note the time. */
static inline void cio__transport_traffic(cio_transport_t *t, size_t in, size_t out)
{
    t->loop->bytes_in += in;
    t->loop->bytes_out += out;
    t->last_io = t->loop->now;
}

/* loop/handle.c: slots and the ready ring. */
int cio__slab_alloc(cio__slab_t *s, uint32_t *index);
void cio__slab_free(cio__slab_t *s, uint32_t index);
void cio__slab_destroy(cio__slab_t *s);
int cio__ring_push(cio__ring_t *r, uint32_t index);
void cio__ring_destroy(cio__ring_t *r);
static inline uint32_t cio__ring_pop(cio__ring_t *r)
{
    uint32_t v = r->v[r->head];
    r->head = (r->head + 1) & r->mask;
    r->len--;
    return v;
}
int cio__slot_alloc(cio_loop_t *loop, uint32_t *index);
int cio__slot_reserve(cio_loop_t *loop, uint32_t *index);
void cio__slot_schedule_reserved(cio_loop_t *loop, uint32_t index, const cio__slot_t *proto);
void cio__slot_unreserve(cio_loop_t *loop, uint32_t index);
int cio__schedule(cio_loop_t *loop, const cio__slot_t *proto, cio_handle_t *handle);
int cio__schedule_check(cio_loop_t *loop, const void *cb);
bool cio__handle_pending(cio_handle_t h);
void cio__slot_release(cio_loop_t *loop, uint32_t index);

/* loop/timer.c: the timer heap. */
int cio__timer_add(cio_loop_t *loop, double when, const cio__slot_t *proto, cio_handle_t *handle);
double cio__timer_timeout(cio_loop_t *loop);
void cio__timer_expire(cio_loop_t *loop, double now);
void cio__timer_discard_all(cio_loop_t *loop);

/* loop/mailbox.c: call_soon_threadsafe. */
int cio__mailbox_init(cio_loop_t *loop);
void cio__mailbox_close(cio_loop_t *loop);
void cio__mailbox_destroy(cio_loop_t *loop);
bool cio__mailbox_pending(cio_loop_t *loop);
size_t cio__mailbox_depth(cio_loop_t *loop);
bool cio__mailbox_sleep(cio_loop_t *loop);
void cio__mailbox_awake(cio_loop_t *loop);
void cio__mailbox_drain(cio_loop_t *loop);
void cio__mailbox_discard(cio_loop_t *loop);
int cio__call_soon_threadsafe_owned(cio_loop_t *loop, cio_callback_t cb, cio_callback_t release,
                                    void *arg);
cio__mbox_node_t *cio__mailbox_node_reserve(void);
void cio__mailbox_node_unreserve(cio__mbox_node_t *n);
int cio__mailbox_post_reserved(cio_loop_t *loop, cio__mbox_node_t *n, cio_callback_t cb,
                               cio_callback_t release, void *arg);
typedef struct cio__mbox_port cio__mbox_port_t;
int cio__mailbox_port(cio_loop_t *loop, cio__mbox_port_t **port);
void cio__mailbox_port_ref(cio__mbox_port_t *p);
void cio__mailbox_port_unref(cio__mbox_port_t *p);
int cio__mailbox_port_post(cio__mbox_port_t *p, cio__mbox_node_t *n, cio_callback_t cb,
                           cio_callback_t release, void *arg);
void cio__mailbox_port_attach(cio__mbox_port_t *p, void *ext, void (*closed)(void *ext));
void *cio__mailbox_attached(cio_loop_t *loop);

/* loop/loop.c */
double cio__now(void);
double cio__poll_timeout(cio_loop_t *loop);
bool cio__wrong_thread(const cio_loop_t *loop);

/* loop/policy.c: the per-thread running loop. */
cio_loop_t *cio__get_running(void);
void cio__set_running(cio_loop_t *loop);
void cio__policy_forget(cio_loop_t *loop);

/* loop/future.c */
void cio__future_init(cio_future_t *fut, cio_loop_t *loop, const cio__future_ops_t *ops);
int cio__future_set_result(cio_future_t *fut, void *result);
int cio__future_set_error(cio_future_t *fut, int err, const char *message);
bool cio__future_set_cancelled(cio_future_t *fut, const char *message);
int cio__future_copy_outcome(cio_future_t *dst, const cio_future_t *src);
int cio__future_set_owned_result(cio_future_t *fut, void *result, void (*result_free)(void *));

void *cio__future_take_result(cio_future_t *fut);

/* loop/executor.c: a job, what it owns, and how its future reports. */
typedef struct cio__job_spec {
    cio_task_fn fn;
    void *arg;
    void (*free_arg)(void *arg);       /* once the job is done with arg (ran or never will) */
    void (*free_result)(void *result); /* the future owns the result; NULL: nobody does */
    bool describe_errors;              /* an error's message is cio_strerror()'s */
    bool uncounted;                    /* not a run_in_executor job: not in executor_jobs */
} cio__job_spec_t;
cio_future_t *cio__executor_submit(cio_loop_t *loop, cio_executor_t *ex,
                                   const cio__job_spec_t *spec);
void cio__executors_forget_loop(cio_loop_t *loop);

/* loop/signal.c */
void cio__signals_forget_loop(cio_loop_t *loop);

/* loop/resolver.c */
struct addrinfo;
int cio__resolve(cio_loop_t *loop, const char *host, const char *port, const struct addrinfo *hints,
                 struct addrinfo **res);

/* loop/stack.c */
size_t cio__stack_size(size_t requested);
int cio__stack_get(cio_loop_t *loop, size_t size, cio__stack_t *st);
void cio__stack_put(cio_loop_t *loop, cio__stack_t *st);
void cio__stack_pool_destroy(cio_loop_t *loop);

/* loop/task.c */
void cio__tasks_destroy_pending(cio_loop_t *loop);
void cio__task_set_error_message(const char *message);
cio_future_t *cio__spawn(cio_loop_t *loop, cio_task_fn fn, void *arg, void (*free_arg)(void *));

/* loop/agen.c */
int cio__agen_body(void *arg, void **result);
void cio__agens_detach(cio_loop_t *loop);

/* loop/io.c */
enum { CIO__IO_READ = 0, CIO__IO_WRITE = 1 };
typedef struct cio__io cio__io_t;
int cio__io_start(cio_loop_t *loop, int fd, void *owner, int dir, cio_callback_t cb, void *arg);
bool cio__io_stop(cio_loop_t *loop, int fd, void *owner, int dir);
bool cio__io_owned(cio_loop_t *loop, int fd);
void cio__io_kick(cio_loop_t *loop, int fd, void *owner, int dir);
int cio__set_nonblocking(int fd);
void cio__io_destroy_all(cio_loop_t *loop);

/* loop/transport.c: what every transport kind shares. */
#define CIO__READ_BUF_SIZE (256 * 1024) /* asyncio's max_size for one recv */
cio_transport_t *cio__transport_alloc(cio_loop_t *loop);
void cio__transport_discard(cio_transport_t *t);
void cio__transport_start(cio_transport_t *t, int fd, int kind, cio_protocol_t *protocol,
                          struct cio_server_s *server, cio_future_t *waiter);
void cio__transport_schedule_lost(cio_transport_t *t, int err);
void cio__transport_force_close(cio_transport_t *t, int err);
void cio__transport_maybe_pause(cio_transport_t *t);
void cio__transport_maybe_resume(cio_transport_t *t);
int cio__transport_buffer_reserve(cio_transport_t *t, size_t len);
void cio__transport_buffer_put(cio_transport_t *t, const void *data, size_t len);
int cio__transport_watch_writes(cio_transport_t *t);
int cio__transport_read_start(cio_transport_t *t);
void cio__transport_flushed(cio_transport_t *t);
void cio__transport_pin(cio_transport_t *t);
void cio__transport_unpin(cio_transport_t *t);

/* loop/stream.c and loop/datagram.c: each kind's reads and writes. */
int cio__stream_on_readable(void *arg);
int cio__stream_on_writable(void *arg);
int cio__dgram_on_readable(void *arg);
int cio__dgram_on_writable(void *arg);
/* loop/dgram_read.c */
typedef struct cio__dgram_batch cio__dgram_batch_t;
/* The head of one datagram kept in a buffer, followed by its address and payload. */
typedef struct cio__dgram_record {
    uint32_t len;
    uint32_t addrlen;
} cio__dgram_record_t;
void cio__dgram_report_error(cio_transport_t *t, int err);
void cio__dgram_resumed(cio_transport_t *t);
void cio__transport_fatal(cio_transport_t *t, int err, const char *message, bool protocol_failed);
/* The transport is ready for its protocol: connection_made, reading, the waiter. */
void cio__transport_made(cio_transport_t *t);
void cio__transports_destroy_all(cio_loop_t *loop);

/* loop/pipe.c: stream transports over pipes. */
ssize_t cio__pipe_writev(cio_transport_t *t, const struct iovec *iov, int iovcnt);
int cio__pipe_on_hup(void *arg);
int cio__pipe_transport_new(cio_loop_t *loop, int fd, bool writable, cio_protocol_t *protocol,
                            cio_future_t *waiter, cio_transport_t **out);

/* loop/tls.c: the TLS layer inside a stream transport. */
typedef struct cio__tls_params {
    struct ssl_ctx_st *ctx;
    bool server_side;
    const char *hostname; /* checked against the peer's certificate; NULL: no check */
    double handshake_timeout, shutdown_timeout; /* seconds; 0: the defaults */
    struct ssl_session_st *session;             /* a client's session to resume, or NULL */
} cio__tls_params_t;
int cio__tls_attach(cio_transport_t *t, const cio__tls_params_t *p);
void cio__tls_free(cio_transport_t *t);
void cio__tls_begin(cio_transport_t *t);
int cio__tls_on_readable(cio_transport_t *t);
int cio__tls_writev(cio_transport_t *t, const struct iovec *iov, int iovcnt, size_t total);
void cio__tls_close(cio_transport_t *t);
void cio__tls_abort(cio_transport_t *t);
void cio__tls_resumed(cio_transport_t *t);
int cio__tls_extra_info(cio_transport_t *t, const char *name, cio_extra_info_t *info);
bool cio__tls_quiet_error(int err);

/* loop/proxy.c: the PROXY header stage before TLS and the protocol (coreio/proxy.h). */
struct cio_proxy_opts;
bool cio__proxy_opts_valid(const struct cio_proxy_opts *o); /* NULL is valid: no PROXY */
int cio__proxy_opts_copy(struct cio_proxy_opts *dst, const struct cio_proxy_opts *src);
void cio__proxy_opts_clear(struct cio_proxy_opts *o);
int cio__proxy_attach(cio_transport_t *t, const struct cio_proxy_opts *o);
void cio__proxy_free(cio_transport_t *t);
void cio__proxy_begin(cio_transport_t *t);
int cio__proxy_on_readable(cio_transport_t *t);
/* 0 with @p info filled, -ENOENT, or 1: the key is the socket's to answer. */
int cio__proxy_extra_info(const cio_transport_t *t, const char *name, cio_extra_info_t *info);
void cio__proxy_log_refusal(cio_loop_t *loop, int fd, int err);
void cio__proxy_log_dropped(cio_loop_t *loop, const struct sockaddr *from, socklen_t len, int err);
/* A peer's bad header is its own business: the stage logs it, rate-limited. */
bool cio__proxy_quiet_error(int err);

/* loop/proxy_dgram.c: PROXY v2 on a datagram endpoint, a header in each datagram. */
struct cio_proxy_header;
bool cio__dgram_proxy_opts_valid(const struct cio_proxy_opts *o); /* NULL is valid: none */
int cio__dgram_proxy_attach(cio_transport_t *t, const struct cio_proxy_opts *o);
void cio__dgram_proxy_free(cio_transport_t *t);
/* The header's length in @p buf[0..@p n) from @p from, or < 0: drop it (logged). */
ssize_t cio__dgram_proxy_strip(cio_transport_t *t, const struct sockaddr *from, socklen_t fromlen,
                               const uint8_t *buf, size_t n, struct cio_proxy_header *h);
/* The header get_extra_info("proxy") answers with, while its datagram is delivered. */
void cio__dgram_proxy_set_current(cio_transport_t *t, const struct cio_proxy_header *h);
int cio__dgram_proxy_extra_info(const cio_transport_t *t, const char *name, cio_extra_info_t *info);

/* loop/connection.c: inside a task, waiting on descriptors. */
int cio__await_fd(cio_loop_t *loop, int fd, void *owner, int dir);
int cio__connect_fd(cio_loop_t *loop, int fd, const struct sockaddr *addr, socklen_t len);

/* loop/server.c: a server counts the connections it accepted. */
void cio__server_attach(struct cio_server_s *server, cio_transport_t *t);
void cio__server_detach(struct cio_server_s *server, cio_transport_t *t);
void cio__servers_destroy_all(cio_loop_t *loop);

/* loop/log.c */
void cio__log(cio_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool cio__log_enabled(cio_log_level_t level);

/* loop/exception.c: a callback reported an error; describe @p fn for logs. */
void cio__report_callback_error(cio_loop_t *loop, const cio_handle_t *h, const void *fn,
                                cio_future_t *fut, int err);
void cio__describe_fn(const void *fn, char *buf, size_t len);

/* loop/spawn.c: starting a child process (posix_spawn, or clone and exec). */
typedef struct cio__child_spec {
    const char *program; /* looked up in PATH unless it holds a '/' */
    char *const *argv;
    char *const *envp; /* NULL: environ */
    int stdio[3];      /* the child's 0-2: a descriptor (>= 3, or i itself); -1: inherit */
    const char *cwd;
    const int *pass_fds;
    size_t npass_fds;
    bool new_session, set_pgid, set_umask;
    pid_t pgid;
    mode_t umask;
} cio__child_spec_t;
int cio__spawn_child(const cio__child_spec_t *spec, pid_t *pid);

/* loop/child.c: watching, signalling and reaping a child (pidfd, or polling). */
typedef struct cio__child {
    cio_loop_t *loop;
    pid_t pid;
    int pidfd; /* -1 when the loop polls for it */
    bool exited;
    int returncode; /* the exit status, or minus the signal */
    void (*on_exit)(struct cio__child *c);
    cio__queue_t poll_link; /* in loop->polled_children while polled */
} cio__child_t;
enum { CIO__CHILD_NO_PIDFD = 1, CIO__CHILD_CLONE = 2, CIO__CHILD_NO_CLOSE_RANGE = 4 };
extern _Atomic int cio__child_test_flags __attribute__((visibility("hidden")));
CIO_EXTERN void cio__child_set_test_flags(int flags); /* tests only: CIO__CHILD_* */
int cio__child_watch(cio_loop_t *loop, cio__child_t *c, pid_t pid, void (*on_exit)(cio__child_t *));
int cio__child_signal(cio__child_t *c, int sig);
void cio__child_reap_now(cio__child_t *c);

/* loop/subprocess.c */
void cio__subprocesses_destroy_all(cio_loop_t *loop);

#endif /* CIO_LOOP_INTERNAL_H */
