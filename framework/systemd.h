/*
 * framework/systemd.h: what coreiod says to, and takes from, systemd, without
 * libsystemd: readiness and status notifications (sd_notify(3)) and socket
 * activation (sd_listen_fds(3)). Both follow libsystemd's reading of the
 * environment, so a unit written for any sd_notify() or sd_listen_fds()
 * daemon works for coreiod. Internal to the library; standalone (no other
 * framework header), so that tests compile it on its own.
 */
#ifndef CIO_FRAMEWORK_SYSTEMD_H
#define CIO_FRAMEWORK_SYSTEMD_H

#include <stddef.h>

/* The first descriptor systemd passes; the others follow it without a gap. */
#define CIO__SD_LISTEN_FDS_START 3

/* The largest message cio__sd_notifyf() formats, its terminating NUL included. */
#define CIO__SD_NOTIFY_MAX 4096

/*
 * Send @p state ("READY=1", "STATUS=serving", several assignments separated
 * by '\n') to the service manager as one datagram on the AF_UNIX socket
 * $NOTIFY_SOCKET names: a path, or with a leading '@' a name in the abstract
 * namespace. Never blocks. Returns 1 when sent, 0 when NOTIFY_SOCKET is not
 * set, else -errno: -EINVAL for a NULL @p state or a value that is no socket
 * address (empty, relative, too long for sun_path), -EAFNOSUPPORT for an
 * AF_VSOCK address, -EAGAIN when the manager's queue is full, or what
 * socket(2) or sendto(2) failed with (-ENOENT, -ECONNREFUSED, ...).
 * NOTIFY_SOCKET is left set, for later messages. Any thread (it reads the
 * environment, so not while another thread changes it).
 */
int cio__sd_notify(const char *state);

/* cio__sd_notify() of the printf-style message @p fmt, formatted on the caller's
 * stack; -EMSGSIZE, and nothing sent, if it needs more than CIO__SD_NOTIFY_MAX
 * bytes. Any thread. */
int cio__sd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The same, to the socket @p address names (a NOTIFY_SOCKET value; NULL: none, 0
 * returned), for a process that took NOTIFY_SOCKET out of its environment so that
 * its children cannot speak for it. */
int cio__sd_notify_at(const char *address, const char *state);
int cio__sd_notifyf_at(const char *address, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * The listening sockets systemd passed this process (socket activation): when
 * $LISTEN_PID is this process's id, the $LISTEN_FDS descriptors from
 * CIO__SD_LISTEN_FDS_START on, each made FD_CLOEXEC, with their names from
 * $LISTEN_FDNAMES (':'-separated, as many as descriptors; "unknown" for each
 * when the variable is not set). Returns 0 with *@p n the number of sockets,
 * *@p fds and *@p names malloc'd arrays of that many (the caller frees them
 * with cio__sd_listen_free() and owns the descriptors); *@p n is 0 and the
 * arrays NULL when the process was not socket-activated ($LISTEN_PID not set,
 * or another process's, or $LISTEN_FDS not set). Else -errno, nothing
 * allocated, with the descriptors left open: -EINVAL for a malformed
 * $LISTEN_PID or $LISTEN_FDS or a count of names other than of descriptors,
 * -EBADF for a descriptor that is not open, -ENOTSOCK for one that is no
 * socket, -ENOMEM. Once $LISTEN_PID names this process, LISTEN_PID,
 * LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PIDFDID are unset, whatever the
 * outcome, so that no child process takes them for its own. Call it at
 * startup, before other threads run (it changes the environment).
 */
int cio__sd_listen_fds(int **fds, char ***names, size_t *n);

/* Free what cio__sd_listen_fds() returned: @p fds, the @p n names and @p names
 * (NULL is fine); the descriptors stay open. */
void cio__sd_listen_free(int *fds, char **names, size_t n);

#endif /* CIO_FRAMEWORK_SYSTEMD_H */
