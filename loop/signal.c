/*
 * loop/signal.c: add_signal_handler for a process with many threads. A
 * process-wide sigaction handler only writes the signal number into a pipe
 * (all it may safely do); a dispatching thread, with every signal blocked,
 * reads the pipe and sends each registered loop its callback through that
 * loop's mailbox. So the signal may land on any thread, and the callback
 * still runs on the loop that asked for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

typedef struct registration {
    struct registration *next;
    cio_loop_t *loop;
    cio_callback_t cb;
    void *arg;
} registration_t;

static struct {
    pthread_mutex_t mu;
    registration_t *by_signal[NSIG];
    int pipe[2]; /* the handler writes, the dispatcher reads */
    bool started;
    /* The write end again, published with release order once the pipe is
     * made, so a handler on any thread sees it made (and tools can tell). */
    _Atomic int wfd;
} sigs = {.mu = PTHREAD_MUTEX_INITIALIZER, .pipe = {-1, -1}, .wfd = -1};

/* The sigaction handler: async-signal-safe, errno preserved. */
static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    int fd = atomic_load_explicit(&sigs.wfd, memory_order_acquire);
    ssize_t w = fd >= 0 ? write(fd, &b, 1) : 0;
    (void)w; /* a full pipe drops the repeat, as signals coalesce anyway */
    errno = saved;
}

static void *dispatcher(void *arg)
{
    for (;;) {
        unsigned char buf[64];
        ssize_t n = read(sigs.pipe[0], buf, sizeof(buf));
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            return NULL;
        }
        pthread_mutex_lock(&sigs.mu);
        for (ssize_t i = 0; i < n; i++) {
            for (registration_t *r = sigs.by_signal[buf[i]]; r; r = r->next)
                cio_loop_call_soon_threadsafe(r->loop, r->cb, r->arg);
        }
        pthread_mutex_unlock(&sigs.mu);
    }
}

/* The pipe and the dispatching thread, on first use (sigs.mu held). */
static int start_dispatcher(void)
{
    if (sigs.started)
        return 0;
    if (pipe2(sigs.pipe, O_CLOEXEC) < 0)
        return -errno;
    fcntl(sigs.pipe[1], F_SETFL, O_NONBLOCK);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    int rc = pthread_create(&t, NULL, dispatcher, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        close(sigs.pipe[0]);
        close(sigs.pipe[1]);
        sigs.pipe[0] = sigs.pipe[1] = -1;
        return -EAGAIN;
    }
    pthread_detach(t);
    sigs.started = true;
    atomic_store_explicit(&sigs.wfd, sigs.pipe[1], memory_order_release);
    return 0;
}

static bool catchable(int sig)
{
    return sig >= 1 && sig < NSIG && sig != SIGKILL && sig != SIGSTOP;
}

int cio_loop_add_signal_handler(cio_loop_t *loop, int sig, cio_callback_t cb, void *arg)
{
    int rc = cio__schedule_check(loop, (const void *)cb);
    if (rc < 0)
        return rc;
    if (!catchable(sig))
        return -EINVAL;
    pthread_mutex_lock(&sigs.mu);
    rc = start_dispatcher();
    registration_t *r = NULL;
    for (r = sigs.by_signal[sig]; rc == 0 && r && r->loop != loop; r = r->next)
        ;
    if (rc == 0 && !r) {
        r = calloc(1, sizeof(*r));
        if (!r) {
            rc = -ENOMEM;
        } else {
            r->loop = loop;
            r->next = sigs.by_signal[sig];
            sigs.by_signal[sig] = r;
        }
    }
    if (rc == 0) {
        r->cb = cb;
        r->arg = arg;
        struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
        sigfillset(&sa.sa_mask);
        if (sigaction(sig, &sa, NULL) < 0)
            rc = -errno;
    }
    pthread_mutex_unlock(&sigs.mu);
    return rc;
}

/* Unlink @p loop's registration for @p sig (sigs.mu held); whether there was one. */
static bool unregister(cio_loop_t *loop, int sig)
{
    for (registration_t **pp = &sigs.by_signal[sig]; *pp; pp = &(*pp)->next) {
        registration_t *r = *pp;
        if (r->loop != loop)
            continue;
        *pp = r->next;
        free(r);
        /* Nobody handles it any more: the default disposition returns. */
        if (!sigs.by_signal[sig])
            signal(sig, SIG_DFL);
        return true;
    }
    return false;
}

int cio_loop_remove_signal_handler(cio_loop_t *loop, int sig)
{
    if (!loop)
        return -EINVAL;
    if (!catchable(sig))
        return -EINVAL;
    pthread_mutex_lock(&sigs.mu);
    bool removed = unregister(loop, sig);
    pthread_mutex_unlock(&sigs.mu);
    return removed ? 1 : 0;
}

/* The loop is closing: it handles no signal any more. */
void cio__signals_forget_loop(cio_loop_t *loop)
{
    pthread_mutex_lock(&sigs.mu);
    for (int sig = 1; sig < NSIG; sig++)
        unregister(loop, sig);
    pthread_mutex_unlock(&sigs.mu);
}
