/*
 * examples/display_date.c: asyncio's "Display the current date with
 * call_later()": print the date every second for five seconds.
 * An optional argument changes the total duration in seconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

#include <coreio.h>

typedef struct clock_state {
    cio_loop_t *loop;
    double end_time;
} clock_state_t;

static int display_date(void *arg)
{
    clock_state_t *st = arg;
    struct timeval tv;
    struct tm tm;
    char text[32];
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S", &tm);
    printf("%s.%06ld\n", text, (long)tv.tv_usec);
    fflush(stdout);
    if (cio_loop_time(st->loop) + 1.0 < st->end_time)
        return cio_loop_call_later(st->loop, 1, display_date, st, NULL);
    cio_loop_stop(st->loop);
    return 0;
}

int main(int argc, char **argv)
{
    double duration = argc > 1 ? strtod(argv[1], NULL) : 5.0;
    clock_state_t st = {.loop = cio_new_event_loop()};
    if (!st.loop)
        return 1;
    /* Schedule the first call to display_date(). */
    st.end_time = cio_loop_time(st.loop) + duration;
    int rc = cio_loop_call_soon(st.loop, display_date, &st, NULL);
    if (rc == 0)
        rc = cio_loop_run_forever(st.loop); /* blocks until cio_loop_stop() */
    if (rc < 0)
        fprintf(stderr, "display_date: %s\n", cio_strerror(rc));
    cio_loop_free(st.loop);
    return rc < 0;
}
