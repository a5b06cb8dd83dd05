/*
 * tests/sd_probe.c: a socket-activated program for tests/systemd_activation.sh.
 * It takes its sockets with cio__sd_listen_fds() and prints, one line each:
 *     pid=PID
 *     listen rc=RC n=N
 *     fd=FD name=NAME type=stream|dgram family=inet|inet6|unix listening=0|1 cloexec=0|1
 *        nonblock=0|1 reuseport=0|1 addr=ADDRESS
 *     env LISTEN_PID=set|unset LISTEN_FDS=... LISTEN_FDNAMES=... NOTIFY_SOCKET=set|unset
 *     notify rc=RC
 * having sent "READY=1\nSTATUS=probe N sockets\nMAINPID=PID" with cio__sd_notifyf().
 * Then, as its arguments say:
 *     --serve    accept one connection on each listening socket and write it "NAME\n"
 *     --wait     print "signal N" for each SIGHUP and SIGUSR2, until SIGTERM or SIGINT
 *                ends it (by that signal, raised again)
 *     --exit N   exit with status N (default 0)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "systemd.h"

static int sockopt(int fd, int opt)
{
    int v = -1;
    socklen_t len = sizeof(v);
    return getsockopt(fd, SOL_SOCKET, opt, &v, &len) == 0 ? v : -1;
}

/* @p fd's local address as sd_launch.py prints it (the type prefix aside). */
static const char *address(int fd, char *buf, size_t size, const char **family)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return "?";
    if (ss.ss_family == AF_UNIX) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
        size_t l = len - offsetof(struct sockaddr_un, sun_path);
        *family = "unix";
        if (l > 0 && sun->sun_path[0] == '\0')
            snprintf(buf, size, "@%.*s", (int)(l - 1), sun->sun_path + 1);
        else
            snprintf(buf, size, "%s", l > 0 ? sun->sun_path : "");
        return buf;
    }
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    bool v6 = ss.ss_family == AF_INET6;
    *family = v6 ? "inet6" : "inet";
    inet_ntop(ss.ss_family, v6 ? (void *)&in6->sin6_addr : (void *)&in->sin_addr, host,
              sizeof(host));
    snprintf(buf, size, v6 ? "[%s]:%d" : "%s:%d", host, ntohs(v6 ? in6->sin6_port : in->sin_port));
    return buf;
}

static void print_fd(int fd, const char *name)
{
    char buf[160];
    const char *family = "?";
    const char *addr = address(fd, buf, sizeof(buf), &family);
    int type = sockopt(fd, SO_TYPE);
    const char *tname = type == SOCK_STREAM ? "stream" : type == SOCK_DGRAM ? "dgram" : "other";
    printf("fd=%d name=%s type=%s family=%s listening=%d cloexec=%d nonblock=%d reuseport=%d "
           "addr=%s\n",
           fd, name, tname, family, sockopt(fd, SO_ACCEPTCONN) == 1,
           (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0,
           sockopt(fd, SO_REUSEPORT) == 1, addr);
}

static const char *env_or_unset(const char *key)
{
    return getenv(key) ? "set" : "unset";
}

/* One connection on each listening socket, answered with the socket's name. */
static void serve(const int *fds, char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (sockopt(fds[i], SO_ACCEPTCONN) != 1)
            continue;
        int flags = fcntl(fds[i], F_GETFL);
        fcntl(fds[i], F_SETFL, flags & ~O_NONBLOCK);
        int c = accept4(fds[i], NULL, NULL, SOCK_CLOEXEC);
        fcntl(fds[i], F_SETFL, flags);
        if (c < 0) {
            printf("accept %s: %s\n", names[i], strerror(errno));
            continue;
        }
        dprintf(c, "%s\n", names[i]);
        close(c);
        printf("served %s\n", names[i]);
    }
}

/* Report SIGHUP and SIGUSR2 until SIGTERM or SIGINT, which then ends the process. */
static void wait_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGHUP, SIGUSR2, SIGTERM, SIGINT};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    printf("waiting\n");
    fflush(stdout);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue;
        printf("signal %d\n", sig);
        fflush(stdout);
        if (sig == SIGTERM || sig == SIGINT) {
            signal(sig, SIG_DFL);
            sigprocmask(SIG_UNBLOCK, &set, NULL);
            raise(sig);
        }
    }
}

int main(int argc, char **argv)
{
    int *fds, status = 0;
    char **names;
    size_t n;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("pid=%d\n", (int)getpid());
    int rc = cio__sd_listen_fds(&fds, &names, &n);
    printf("listen rc=%d n=%zu\n", rc, n);
    for (size_t i = 0; i < n; i++)
        print_fd(fds[i], names[i]);
    printf("env LISTEN_PID=%s LISTEN_FDS=%s LISTEN_FDNAMES=%s NOTIFY_SOCKET=%s\n",
           env_or_unset("LISTEN_PID"), env_or_unset("LISTEN_FDS"), env_or_unset("LISTEN_FDNAMES"),
           env_or_unset("NOTIFY_SOCKET"));
    rc = cio__sd_notifyf("READY=1\nSTATUS=probe %zu sockets\nMAINPID=%d", n, (int)getpid());
    printf("notify rc=%d\n", rc);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--serve") == 0)
            serve(fds, names, n);
        else if (strcmp(argv[i], "--wait") == 0)
            wait_signals();
        else if (strcmp(argv[i], "--exit") == 0 && i + 1 < argc)
            status = atoi(argv[++i]);
    }
    cio__sd_listen_free(fds, names, n);
    return status;
}
