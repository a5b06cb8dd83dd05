/*
 * framework/systemd.c: the two systemd protocols coreiod speaks, read from
 * sd_notify(3), sd_listen_fds(3) and systemd.socket(5) rather than linked from
 * libsystemd: notifications are one datagram each to $NOTIFY_SOCKET; socket
 * activation hands over descriptors 3, 4, ... named by the environment.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "systemd.h"
/* Last: allocations go through the library's failure hook. */
#include "../loop/alloc.h"

/*
 * The address $NOTIFY_SOCKET names into @p sun and *@p len, as
 * libsystemd reads it: an absolute path (the length counts its NUL), or '@'
 * and an abstract name (the length counts exactly the name's bytes: the
 * kernel compares abstract names over the whole length). 0 or -errno.
 */
static int notify_address(const char *e, struct sockaddr_un *sun, socklen_t *len)
{
    size_t l = strlen(e);
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (e[0] == '/') {
        if (l >= sizeof(sun->sun_path))
            return -EINVAL;
        memcpy(sun->sun_path, e, l + 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + l + 1);
        return 0;
    }
    if (e[0] == '@') {
        /* sun_path[0] = 0 marks the abstract namespace; "@" alone names nothing. */
        if (l < 2 || l > sizeof(sun->sun_path))
            return -EINVAL;
        memcpy(sun->sun_path + 1, e + 1, l - 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + l);
        return 0;
    }
    return strncmp(e, "vsock:", 6) == 0 ? -EAFNOSUPPORT : -EINVAL;
}

int cio__sd_notify(const char *state)
{
    return cio__sd_notify_at(getenv("NOTIFY_SOCKET"), state);
}

int cio__sd_notify_at(const char *e, const char *state)
{
    if (!state)
        return -EINVAL;
    if (!e)
        return 0;
    struct sockaddr_un sun;
    socklen_t len;
    int rc = notify_address(e, &sun, &len);
    if (rc < 0)
        return rc;
    /* Non-blocking: a manager that does not read its queue must not stall a loop. */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    size_t size = strlen(state);
    ssize_t sent = sendto(fd, state, size, MSG_NOSIGNAL, (struct sockaddr *)&sun, len);
    rc = sent < 0 ? -errno : (size_t)sent == size ? 1 : -EMSGSIZE;
    close(fd);
    return rc;
}

/* Format @p fmt into @p buf (CIO__SD_NOTIFY_MAX bytes): 0, or -EMSGSIZE / -EINVAL. */
static int format(char *buf, const char *fmt, va_list ap)
{
    int n = vsnprintf(buf, CIO__SD_NOTIFY_MAX, fmt, ap);
    return n < 0 ? -EINVAL : n >= CIO__SD_NOTIFY_MAX ? -EMSGSIZE : 0;
}

int cio__sd_notifyf(const char *fmt, ...)
{
    char buf[CIO__SD_NOTIFY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int rc = format(buf, fmt, ap);
    va_end(ap);
    return rc < 0 ? rc : cio__sd_notify(buf);
}

int cio__sd_notifyf_at(const char *address, const char *fmt, ...)
{
    char buf[CIO__SD_NOTIFY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int rc = format(buf, fmt, ap);
    va_end(ap);
    return rc < 0 ? rc : cio__sd_notify_at(address, buf);
}

/* A count or a pid: decimal digits only (no sign, space or leading zero), 1..@p max. */
static int parse_positive(const char *s, long max, long *out)
{
    long v = 0;
    if (s[0] < '1' || s[0] > '9')
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (max - (*s - '0')) / 10)
            return -EINVAL;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return 0;
}

/*
 * Make the @p n passed descriptors FD_CLOEXEC, so that no child of ours
 * inherits them, and check that each is a socket. Each open one is marked,
 * even past one that is no socket; 0, or the first -EBADF or -ENOTSOCK.
 */
static int claim_fds(size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        int fd = CIO__SD_LISTEN_FDS_START + (int)i;
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0 || (!(flags & FD_CLOEXEC) && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0))
            return rc ? rc : -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
            return rc ? rc : -errno;
        if (!S_ISSOCK(st.st_mode) && rc == 0)
            rc = -ENOTSOCK;
    }
    return rc;
}

/* The @p n names of $LISTEN_FDNAMES (@p e; NULL: each "unknown") into @p names. */
static int split_names(const char *e, char **names, size_t n)
{
    if (!e) {
        for (size_t i = 0; i < n; i++)
            if (!(names[i] = strdup("unknown")))
                return -ENOMEM;
        return 0;
    }
    /* As libsystemd: "" holds no name, and every ':' separates two, empty ones too. */
    size_t count = *e ? 1 : 0;
    for (const char *p = e; *p; p++)
        count += *p == ':';
    if (count != n)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        size_t l = strcspn(e, ":");
        if (!(names[i] = strndup(e, l)))
            return -ENOMEM;
        e += l + (e[l] == ':');
    }
    return 0;
}

/* The descriptors and names of the @p n sockets, once they are checked. */
static int collect(int **fds, char ***names, size_t n)
{
    int *f = malloc(n * sizeof(*f));
    char **s = calloc(n, sizeof(*s));
    int rc = f && s ? split_names(getenv("LISTEN_FDNAMES"), s, n) : -ENOMEM;
    if (rc < 0) {
        cio__sd_listen_free(f, s, n);
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        f[i] = CIO__SD_LISTEN_FDS_START + (int)i;
    *fds = f;
    *names = s;
    return 0;
}

/* What LISTEN_PID and LISTEN_FDS ask of this process: 0 and *@p n (0: nothing). */
static int read_counts(size_t *n, bool *ours)
{
    const char *e = getenv("LISTEN_PID");
    long pid, count;
    if (!e)
        return 0;
    if (parse_positive(e, INT_MAX, &pid) < 0)
        return -EINVAL;
    if (pid != (long)getpid())
        return 0;
    *ours = true;
    if (!(e = getenv("LISTEN_FDS")))
        return 0;
    if (parse_positive(e, INT_MAX - CIO__SD_LISTEN_FDS_START, &count) < 0)
        return -EINVAL;
    *n = (size_t)count;
    return 0;
}

int cio__sd_listen_fds(int **fds, char ***names, size_t *n)
{
    size_t count = 0;
    bool ours = false;
    *fds = NULL;
    *names = NULL;
    *n = 0;
    int rc = read_counts(&count, &ours);
    /* Checked before anything is allocated: a huge count ends at the first closed descriptor. */
    if (rc == 0 && count > 0)
        rc = claim_fds(count);
    if (rc == 0 && count > 0)
        rc = collect(fds, names, count);
    if (rc == 0)
        *n = count;
    if (ours) {
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        unsetenv("LISTEN_PIDFDID");
    }
    return rc;
}

void cio__sd_listen_free(int *fds, char **names, size_t n)
{
    if (names)
        for (size_t i = 0; i < n; i++)
            free(names[i]);
    free(names);
    free(fds);
}
