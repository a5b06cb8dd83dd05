/*
 * examples/hello_world.c: asyncio's "Hello World with call_soon()": schedule
 * one callback that prints a greeting and stops the loop.
 */
#include <stdio.h>

#include <coreio.h>

static int hello_world(void *arg)
{
    cio_loop_t *loop = arg;
    printf("Hello World\n");
    cio_loop_stop(loop);
    return 0;
}

int main(void)
{
    cio_loop_t *loop = cio_new_event_loop();
    if (!loop)
        return 1;
    /* Schedule a call to hello_world(). */
    int rc = cio_loop_call_soon(loop, hello_world, loop, NULL);
    if (rc == 0)
        rc = cio_loop_run_forever(loop); /* blocks until cio_loop_stop() */
    if (rc < 0)
        fprintf(stderr, "hello_world: %s\n", cio_strerror(rc));
    cio_loop_free(loop);
    return rc < 0;
}
