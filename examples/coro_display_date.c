/*
 * examples/coro_display_date.c: asyncio's "Display the current date with a
 * coroutine": a task prints the date every second for five seconds, sleeping
 * with cio_sleep() in between. An optional argument changes the duration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

#include <coreio.h>

static void print_now(void)
{
    struct timeval tv;
    struct tm tm;
    char text[32];
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S", &tm);
    printf("%s.%06ld\n", text, (long)tv.tv_usec);
    fflush(stdout);
}

static int display_date(void *arg, void **result)
{
    cio_loop_t *loop = cio_get_running_loop();
    double end_time = cio_loop_time(loop) + *(double *)arg;
    for (;;) {
        print_now();
        if (cio_loop_time(loop) + 1.0 >= end_time)
            break;
        int rc = cio_sleep(1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int main(int argc, char **argv)
{
    double duration = argc > 1 ? strtod(argv[1], NULL) : 5.0;
    int rc = cio_run(display_date, &duration, false, NULL);
    if (rc < 0)
        fprintf(stderr, "coro_display_date: %s\n", cio_strerror(rc));
    return rc < 0;
}
