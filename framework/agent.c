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
    cio__client_t client;
} agent_conn_t;

/* The agent's clients (it lives on the control loop), oldest first. */
static __thread cio__clients_t clients;

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

static int agent_made(cio_protocol_t *p, cio_transport_t *t)
{
    agent_conn_t *c = (agent_conn_t *)p;
    char line[32];
    int rc = cio__clients_add(&clients, &c->client, t, CONNECTIONS_MAX, AGENT_TIMEOUT);
    int n = agent_line(c->app, line, sizeof(line));
    if (rc == 0)
        rc = cio_transport_write(t, line, (size_t)n);
    if (rc == 0 && cio_transport_write_eof(t) < 0)
        cio_transport_close(t);
    return rc;
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
    cio__clients_remove(&c->client);
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
