/*
 * framework/announce.c: what a running app tells the world outside about its
 * state. systemd hears READY, RELOADING, STOPPING and a STATUS line over the
 * notify socket (framework/systemd.c), and after an upgrade the new process's
 * MAINPID, so that the unit follows it; the pid file names the process that
 * serves; and the process an upgrade replaces hears which of its sockets we
 * took. Every one of them is optional and none can stop the app.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "systemd.h"
#include "internal.h"

/* Write our pid to the pid file, atomically (a reader sees the old or the new one). */
static void write_pid_file(const char *path)
{
    char tmp[4096], line[32];
    int n = snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    int len = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
    int fd = n > 0 && (size_t)n < sizeof(tmp)
                 ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
                 : -1;
    bool ok = fd >= 0 && write(fd, line, (size_t)len) == len;
    if (fd >= 0)
        close(fd);
    ok = ok && rename(tmp, path) == 0;
    if (!ok) {
        cio__log(CIO_LOG_ERROR, "pid file %s: %s", path, cio_strerror(-errno));
        if (fd >= 0)
            unlink(tmp);
    }
}

/* Remove the pid file if it still names us (after an upgrade it names the new process). */
static void remove_pid_file(const char *path)
{
    char line[32] = "";
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    bool ours = fgets(line, sizeof(line), f) && atol(line) == (long)getpid();
    fclose(f);
    if (ours)
        unlink(path);
}

/* @p state (lines ending in '\n') and systemd's STATUS line: what the app serves. */
static void notify_status(const cio_app_t *app, const char *state)
{
    cio__sd_notifyf_at(app->notify_socket, "%sSTATUS=serving: %zu worker%s, %zu listener%s", state,
                       app->nworkers, app->nworkers == 1 ? "" : "s", app->nls,
                       app->nls == 1 ? "" : "s");
}

void cio__announce_ready(cio_app_t *app)
{
    if (app->upgrade_chan >= 0)
        cio__handover_ready(app);
    cio__inherit_release(&app->inherit);
    /* After an upgrade we are the unit's main process from now on (NotifyAccess=all). */
    if (app->upgraded)
        cio__sd_notifyf_at(app->notify_socket, "MAINPID=%ld\n", (long)getpid());
    notify_status(app, "READY=1\n");
    if (app->opts.pid_file)
        write_pid_file(app->opts.pid_file);
}

void cio__announce_failed_start(cio_app_t *app)
{
    if (app->upgrade_chan >= 0) /* the old process sees the channel close and goes on */
        close(app->upgrade_chan);
    app->upgrade_chan = -1;
    cio__inherit_release(&app->inherit);
}

void cio__announce_reloading(cio_app_t *app)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    cio__sd_notifyf_at(app->notify_socket, "RELOADING=1\nMONOTONIC_USEC=%llu",
                       (unsigned long long)ts.tv_sec * 1000000ull +
                           (unsigned long long)ts.tv_nsec / 1000);
}

void cio__announce_reloaded(cio_app_t *app)
{
    notify_status(app, "READY=1\n");
}

void cio__announce_stopping(cio_app_t *app)
{
    cio__handover_forget(app); /* still lent: our stop leaves them to the old process */
    /* Handed over, the unit goes on in the new process: systemd must not hear STOPPING. */
    if (!app->handed_over)
        cio__sd_notify_at(app->notify_socket,
                          "STOPPING=1\nSTATUS=stopping: draining the connections");
}

void cio__announce_stopped(cio_app_t *app)
{
    /* Handed over, the file is the new process's: it may rename its own over it at any
     * moment, between our reading it and an unlink, so we do not touch it at all. */
    if (app->opts.pid_file && !app->handed_over)
        remove_pid_file(app->opts.pid_file);
}
