/*
 * tests/many_echo.h: many connections open at once on one loop, each sending
 * one message and checking its echo, then closing: what test_stream runs over
 * plain TCP and test_tls over TLS. Every helper is static: each suite that
 * includes it gets its own copy.
 */
#ifndef CIO_TESTS_MANY_ECHO_H
#define CIO_TESTS_MANY_ECHO_H

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "testutil.h"

#define MANY_MSG_LEN 100
#define MANY_BATCH   50 /* connections made at once, within the default backlog */

typedef struct many {
    int accepted, server_lost, echoed_ok, bad, client_lost, lost_errors;
} many_t;

/* Server side: echo everything back; freed in connection_lost. */
typedef struct echo {
    cio_protocol_t base;
    cio_transport_t *t;
    many_t *m;
} many_echo_t;

static int many_echo_made(cio_protocol_t *p, cio_transport_t *t)
{
    ((many_echo_t *)p)->t = t;
    return 0;
}

static int many_echo_data(cio_protocol_t *p, const void *data, size_t len)
{
    return cio_transport_write(((many_echo_t *)p)->t, data, len);
}

static void many_echo_lost(cio_protocol_t *p, int err)
{
    many_echo_t *e = (many_echo_t *)p;
    e->m->server_lost++;
    e->m->lost_errors += err != 0;
    free(e);
}

static const cio_protocol_ops_t many_echo_ops = {
    .connection_made = many_echo_made,
    .connection_lost = many_echo_lost,
    .data_received = many_echo_data,
};

static cio_protocol_t *many_echo_factory(void *arg)
{
    many_echo_t *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->base.ops = &many_echo_ops;
    e->m = arg;
    e->m->accepted++;
    return &e->base;
}

/* Client side: one message out, the same back. */
typedef struct client {
    cio_protocol_t base;
    cio_transport_t *t;
    many_t *m;
    int id;
    size_t nrx;
    uint8_t rx[MANY_MSG_LEN];
} many_client_t;

static void many_client_msg(int id, uint8_t *msg)
{
    for (int k = 0; k < MANY_MSG_LEN; k++)
        msg[k] = (uint8_t)(id * 7 + k + (k == 0 ? id >> 8 : 0));
}

static int many_client_made(cio_protocol_t *p, cio_transport_t *t)
{
    ((many_client_t *)p)->t = t;
    return 0;
}

static int many_client_data(cio_protocol_t *p, const void *data, size_t len)
{
    many_client_t *c = (many_client_t *)p;
    if (c->nrx + len > MANY_MSG_LEN) {
        c->m->bad++;
        return 0;
    }
    memcpy(c->rx + c->nrx, data, len);
    c->nrx += len;
    if (c->nrx == MANY_MSG_LEN) {
        uint8_t want[MANY_MSG_LEN];
        many_client_msg(c->id, want);
        if (memcmp(want, c->rx, MANY_MSG_LEN) == 0)
            c->m->echoed_ok++;
        else
            c->m->bad++;
    }
    return 0;
}

static void many_client_lost(cio_protocol_t *p, int err)
{
    many_client_t *c = (many_client_t *)p;
    c->m->client_lost++;
    c->m->lost_errors += err != 0;
    c->t = NULL;
}

static const cio_protocol_ops_t many_client_ops = {
    .connection_made = many_client_made,
    .connection_lost = many_client_lost,
    .data_received = many_client_data,
};

static cio_protocol_t *many_client_factory(void *arg)
{
    return arg;
}

/* Inside a task: await @p f, which must succeed; its result. */
static void *many_await(cio_future_t *f)
{
    ck_assert_ptr_nonnull(f);
    void *res = NULL;
    ck_assert_int_eq(cio_await(f, &res), 0);
    cio_future_unref(f);
    return res;
}

/* Inside a task: let the loop run until @p cond holds (10 s at most). */
#define MANY_WAIT(cond)                                                                            \
    do {                                                                                           \
        double until_ = cio_loop_time(cio_get_running_loop()) + 10.0;                              \
        while (!(cond) && cio_loop_time(cio_get_running_loop()) < until_)                          \
            cio_sleep(0.001);                                                                      \
        ck_assert_msg((cond), "timed out waiting for %s", #cond);                                  \
    } while (0)

/*
 * Inside a task: @p nconn (a multiple of MANY_BATCH) connections to an echo
 * server with @p so, made with @p co, all open at once; each echoes its
 * message, then all close, and nothing is lost with an error.
 */
static void many_echo(int nconn, const cio_server_opts_t *so, const cio_connection_opts_t *co)
{
    cio_loop_t *loop = cio_get_running_loop();
    many_t m = {0};
    many_client_t *cs = calloc((size_t)nconn, sizeof(*cs));
    ck_assert_ptr_nonnull(cs);
    cio_server_t *s =
        many_await(cio_loop_create_server(loop, many_echo_factory, &m, "127.0.0.1", "0", so));
    int lfd;
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    ck_assert_uint_ge(cio_server_sockets(s, &lfd, 1), 1);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
    char port[16];
    snprintf(port, sizeof(port), "%d", ntohs(a.sin_port));
    for (int i = 0; i < nconn; i += MANY_BATCH) {
        cio_future_t *fs[MANY_BATCH];
        for (int j = 0; j < MANY_BATCH; j++) {
            many_client_t *c = &cs[i + j];
            *c = (many_client_t){.base = {&many_client_ops}, .m = &m, .id = i + j};
            fs[j] = cio_loop_create_connection(loop, many_client_factory, c, "127.0.0.1", port, co);
            ck_assert_ptr_nonnull(fs[j]);
        }
        for (int j = 0; j < MANY_BATCH; j++)
            ck_assert_ptr_eq(many_await(fs[j]), cs[i + j].t);
    }
    MANY_WAIT(cio_server_active_connections(s) == (size_t)nconn);
    ck_assert_int_eq(m.accepted, nconn);
    /* All open at once: each sends its message and checks the echo. */
    for (int i = 0; i < nconn; i++) {
        uint8_t msg[MANY_MSG_LEN];
        many_client_msg(i, msg);
        ck_assert_int_eq(cio_transport_write(cs[i].t, msg, MANY_MSG_LEN), 0);
    }
    MANY_WAIT(m.echoed_ok + m.bad == nconn);
    ck_assert_int_eq(m.bad, 0);
    for (int i = 0; i < nconn; i++)
        cio_transport_close(cs[i].t);
    MANY_WAIT(m.client_lost == nconn && m.server_lost == nconn);
    ck_assert_int_eq(m.lost_errors, 0);
    ck_assert_uint_eq(cio_server_active_connections(s), 0);
    cio_server_free(s);
    free(cs);
}

#endif /* CIO_TESTS_MANY_ECHO_H */
