/*
 * examples/subprocess_exec.c: the asyncio documentation's
 * create_subprocess_exec example (asyncio-subprocess, "Examples"), in C. A
 * task starts python3 to print the current date with its stdout on a pipe,
 * reads that to end of file, waits for the child and prints the date and the
 * exit code:
 *
 *     async def get_date():
 *         code = 'import datetime; print(datetime.datetime.now())'
 *         proc = await asyncio.create_subprocess_exec(
 *             sys.executable, '-c', code, stdout=asyncio.subprocess.PIPE)
 *         data = await proc.stdout.readline()
 *         line = data.decode('ascii').rstrip()
 *         await proc.wait()
 *         return line
 *
 *     date = asyncio.run(get_date())
 *     print(f"Current date: {date}")
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <coreio.h>

static int get_date(void *arg, void **result)
{
    char *line = arg;
    char prog[] = "python3", opt[] = "-c",
         code_text[] = "import datetime; print(datetime.datetime.now())";
    char *const argv[] = {prog, opt, code_text, NULL};
    cio_subprocess_opts_t opts = {0};
    opts.stdio[0].mode = CIO_STDIO_INHERIT; /* asyncio: stdin=None */
    opts.stdio[2].mode = CIO_STDIO_INHERIT; /* stderr=None */

    /* Create the subprocess; redirect the standard output into a pipe. */
    cio_future_t *started = cio_create_subprocess_exec(cio_get_running_loop(), prog, argv, &opts);
    if (!started)
        return -ENOMEM;
    void *proc_result = NULL;
    int rc = cio_await(started, &proc_result);
    cio_future_unref(started);
    if (rc < 0)
        return rc;
    cio_process_t *proc = proc_result;

    /* Read its output to end of file. */
    size_t len = 0;
    ssize_t n;
    while ((n = cio_process_read(proc, 1, line + len, 255 - len)) > 0)
        len += (size_t)n;
    line[len] = '\0';
    line[strcspn(line, "\n")] = '\0';

    /* Wait for the subprocess exit. */
    int code = -1;
    rc = n < 0 ? (int)n : cio_process_wait(proc, &code);
    cio_process_free(proc);
    *result = (void *)(intptr_t)code;
    return rc;
}

int main(void)
{
    char line[256];
    void *code = NULL;
    int rc = cio_run(get_date, line, false, &code);
    if (rc < 0) {
        fprintf(stderr, "cannot run python3: %s\n", cio_strerror(rc));
        return 1;
    }
    printf("Current date: %s\n", line);
    printf("python3 exited with %d\n", (int)(intptr_t)code);
    return 0;
}
