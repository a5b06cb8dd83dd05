/*
 * examples/coro_hello_world.c: asyncio's coroutine "Hello World": cio_run()
 * runs one task that prints a greeting.
 */
#include <stdio.h>

#include <coreio.h>

static int hello_world(void *arg, void **result)
{
    printf("Hello World!\n");
    return 0;
}

int main(void)
{
    /* Blocking call which returns when the hello_world() task is done. */
    int rc = cio_run(hello_world, NULL, false, NULL);
    if (rc < 0)
        fprintf(stderr, "coro_hello_world: %s\n", cio_strerror(rc));
    return rc < 0;
}
