/*
 * examples/signals.c: asyncio's "Set signal handlers for SIGINT and SIGTERM":
 * the loop runs for an hour unless one of them arrives, which stops it.
 */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <coreio.h>

typedef struct exit_request {
    const char *signame;
    cio_loop_t *loop;
} exit_request_t;

static int ask_exit(void *arg)
{
    exit_request_t *r = arg;
    printf("got signal %s: exit\n", r->signame);
    fflush(stdout);
    cio_loop_stop(r->loop);
    return 0;
}

static int main_task(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    static exit_request_t requests[2] = {{"SIGINT", NULL}, {"SIGTERM", NULL}};
    const int signals[2] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        requests[i].loop = loop;
        int rc = cio_loop_add_signal_handler(loop, signals[i], ask_exit, &requests[i]);
        if (rc < 0)
            return rc;
    }
    return cio_sleep(3600);
}

int main(void)
{
    printf("Event loop running for 1 hour, press Ctrl+C to interrupt.\n");
    printf("pid %d: send SIGINT or SIGTERM to exit.\n", (int)getpid());
    fflush(stdout);
    /* A stop before the task finishes ends cio_run with CIO_ESTOPPED. */
    int rc = cio_run(main_task, NULL, false, NULL);
    return rc == 0 || rc == CIO_ESTOPPED ? 0 : 1;
}
