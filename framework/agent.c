/*
 * framework/agent.c: the HAProxy agent-check listener ([global] agent). On
 * each connection it writes one line and ends it; what the client sends
 * (HAProxy's agent-send text, say) is read and ignored. The line says, in
 * HAProxy's words (its configuration manual, "agent-check"):
 *
 *  - serving: "up ready N%": the server is up, in the READY state (which
 *    also ends a DRAIN or MAINT state an earlier line set), with N percent of
 *    its configured weight, from the loop lag (health.c);
 *  - draining (cio_app_drain()): "drain": no new connections but those that
 *    persistence sends, and the established ones go on;
 *  - stopping: "maint": no new connections at all, the established ones go
 *    on while the listeners drain, and the next process's "ready" ends it.
 *
 * The line is sent and the write side shut at once; the connection closes
 * when the client closes its side, so that bytes the client sent never turn
 * the close into a reset that could lose the line. A client has AGENT_TIMEOUT
 * for that, and when CONNECTIONS_MAX are open the oldest goes, so that idle
 * clients cannot hold the control loop's descriptors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

#define AGENT_TIMEOUT   5.0 /* seconds a client may keep its connection */
#define CONNECTIONS_MAX 64

typedef struct agent_conn {
    cio_protocol_t base;
    cio_app_t *app;
    cio_transport_t *t;
    cio_handle_t deadline;
    struct agent_conn *prev, *next; /* in open_conns, oldest first */
    bool listed;
} agent_conn_t;

/* The agent's connections (it lives on the control loop), oldest first. */
static __thread struct {
    agent_conn_t *head, *tail;
    size_t n;
} open_conns;

static void list_add(agent_conn_t *c)
{
    c->prev = open_conns.tail;
    c->next = NULL;
    *(open_conns.tail ? &open_conns.tail->next : &open_conns.head) = c;
    open_conns.tail = c;
    open_conns.n++;
    c->listed = true;
}

static void list_remove(agent_conn_t *c)
{
    if (!c->listed)
        return;
    *(c->prev ? &c->prev->next : &open_conns.head) = c->next;
    *(c->next ? &c->next->prev : &open_conns.tail) = c->prev;
    open_conns.n--;
    c->listed = false;
}

/* The line for @p app's state into @p buf; its length. */
static int agent_line(cio_app_t *app, char *buf, size_t size)
{
    switch (cio__health(app)) {
    case CIO__HEALTH_SERVING:
        return snprintf(buf, size, "up ready %u%%\n", cio__health_weight(app));
    case CIO__HEALTH_DRAINING:
        return snprintf(buf, size, "drain\n");
    default:
        return snprintf(buf, size, "maint\n");
    }
}

static int too_long(void *arg)
{
    agent_conn_t *c = arg;
    c->deadline = (cio_handle_t){0};
    list_remove(c);
    cio_transport_abort(c->t);
    return 0;
}

static int agent_made(cio_protocol_t *p, cio_transport_t *t)
{
    agent_conn_t *c = (agent_conn_t *)p;
    char line[32];
    c->t = t;
    if (open_conns.n >= CONNECTIONS_MAX) {
        agent_conn_t *oldest = open_conns.head;
        list_remove(oldest);
        cio_transport_abort(oldest->t);
    }
    list_add(c);
    int n = agent_line(c->app, line, sizeof(line));
    int rc = cio_transport_write(t, line, (size_t)n);
    if (rc == 0 && cio_transport_write_eof(t) < 0)
        cio_transport_close(t);
    if (rc < 0)
        return rc;
    return cio_loop_call_later(cio_transport_get_loop(t), AGENT_TIMEOUT, too_long, c, &c->deadline);
}

static int agent_data(cio_protocol_t *p, const void *data, size_t len)
{
    return 0; /* agent-send text, or anything else: the line does not depend on it */
}

static int agent_eof(cio_protocol_t *p)
{
    return 0; /* the client is done: close */
}

static void agent_lost(cio_protocol_t *p, int err)
{
    agent_conn_t *c = (agent_conn_t *)p;
    cio_handle_cancel(c->deadline);
    list_remove(c);
    free(c);
}

static const cio_protocol_ops_t agent_ops = {
    .connection_made = agent_made,
    .data_received = agent_data,
    .eof_received = agent_eof,
    .connection_lost = agent_lost,
};

cio_protocol_t *cio__agent_protocol(void *arg)
{
    agent_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->base.ops = &agent_ops;
    c->app = arg;
    return &c->base;
}
