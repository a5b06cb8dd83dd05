/*
 * tests/pyrun.h: the python3 peers of the Check suites (test_framing,
 * test_proxy), run from inside a task so that the loop goes on serving them.
 */
#ifndef CIO_TESTS_PYRUN_H
#define CIO_TESTS_PYRUN_H

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define PYTHON "/usr/bin/python3" /* Debian's: the one on PATH may lack its modules */

extern char **environ;

/* Whether the peers can run at all (a test without them says so and passes). */
static inline bool have_python(void)
{
    if (access(PYTHON, X_OK) == 0)
        return true;
    printf("skipped: no %s\n", PYTHON);
    return false;
}

/*
 * Inside a task: run @p argv (argv[0] a path) while the loop goes on; its
 * standard output and error go into @p out. Returns its exit status, or -1
 * when it does not end within @p timeout seconds (it is then killed).
 */
static inline int run_captured(char *const argv[], char *out, size_t outlen, double timeout)
{
    int pfd[2];
    ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    pid_t pid;
    ck_assert_int_eq(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    ck_assert_int_eq(fcntl(pfd[0], F_SETFL, O_NONBLOCK), 0);
    size_t n = 0;
    int status = -1;
    double until = cio_loop_time(cio_get_running_loop()) + timeout;
    for (;;) {
        ssize_t r;
        while (n + 1 < outlen && (r = read(pfd[0], out + n, outlen - 1 - n)) > 0)
            n += (size_t)r;
        if (status != -1 || cio_loop_time(cio_get_running_loop()) > until)
            break;
        if (waitpid(pid, &status, WNOHANG) == 0) {
            status = -1;
            cio_sleep(0.002);
        } /* else: read what is left, then stop */
    }
    out[n] = '\0';
    close(pfd[0]);
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#endif /* CIO_TESTS_PYRUN_H */
