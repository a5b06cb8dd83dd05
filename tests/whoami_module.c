/*
 * tests/whoami_module.c: the module tests/haproxy.sh and
 * tests/rolling_restart.sh load behind HAProxy. Its stream service "whoami"
 * greets each connection with one line saying who the connection is from,
 * as the service sees it:
 *
 *   peer=HOST:PORT sock=HOST:PORT real_peer=HOST:PORT real_sock=HOST:PORT
 *   proxy=v1|v2|none [local=0|1 [authority=TEXT] [unique_id=HEX] [alpn=TEXT]]
 *   pid=PID worker=N
 *
 * (one line, blank-separated; peer and sock are "peername" and "sockname",
 * the client's address when a PROXY header carried it; real_ are the
 * socket's own; the PROXY parts only when a header came, the TLVs only when
 * present), then echoes every byte it receives. When its listener drains (a
 * shutdown, or the old process of a binary upgrade), each connection is
 * closed right after the echo of its next complete line: a client that
 * sends one line and waits for its echo sees the close only after a
 * completed exchange, never in the middle of one.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <coreio.h>
#include <coreio/proxy.h>

/* The connections of one listener on one worker, so that drain reaches them. */
typedef struct board {
    struct conn *head;
    bool draining;
} board_t;

typedef struct conn {
    cio_protocol_t base;
    cio_transport_t *t;
    cio_service_ctx_t *ctx;
    board_t *board;
    struct conn *prev, *next;
    bool at_line_end; /* every byte received so far ends a line */
    bool closing;     /* close after the echo of the next complete line */
} conn_t;

#define LINE_MAX_LEN 1024

/* "HOST:PORT" ("[HOST]:PORT" for IPv6, "unix:PATH" for a Unix socket) of @p info's address. */
static void format_addr(const cio_extra_info_t *info, char *out, size_t n)
{
    const struct sockaddr *sa = (const struct sockaddr *)&info->addr;
    char host[NI_MAXHOST], port[NI_MAXSERV];

    if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        size_t len = info->addrlen > offsetof(struct sockaddr_un, sun_path)
                         ? info->addrlen - offsetof(struct sockaddr_un, sun_path)
                         : 0;
        snprintf(out, n, "unix:%.*s", (int)strnlen(un->sun_path, len), un->sun_path);
        return;
    }
    if (getnameinfo(sa, info->addrlen, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, n, "?");
        return;
    }
    snprintf(out, n, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

/* Append " KEY=ADDR" for the extra info @p name, or @p fallback's when the transport has none. */
static void add_addr(char *line, size_t n, const char *key, cio_transport_t *t, const char *name,
                     const char *fallback)
{
    cio_extra_info_t info;
    char addr[NI_MAXHOST + NI_MAXSERV + 8] = "-";
    size_t used = strlen(line);

    if (cio_transport_get_extra_info(t, name, &info) == 0 ||
        (fallback && cio_transport_get_extra_info(t, fallback, &info) == 0))
        format_addr(&info, addr, sizeof(addr));
    snprintf(line + used, n - used, "%s%s=%s", used ? " " : "", key, addr);
}

/* Append " KEY=VALUE" for TLV @p type of @p h, as text (blanks and controls as '?') or hex. */
static void add_tlv(char *line, size_t n, const char *key, const cio_proxy_header_t *h,
                    uint8_t type, bool hex)
{
    const void *value;
    size_t len, used = strlen(line);

    if (cio_proxy_tlv(h, type, &value, &len) != 0)
        return;
    used += (size_t)snprintf(line + used, n - used, " %s=", key);
    for (size_t i = 0; i < len && used + 3 < n; i++) {
        unsigned char c = ((const unsigned char *)value)[i];
        if (hex)
            used += (size_t)snprintf(line + used, n - used, "%02x", c);
        else
            line[used++] = c > ' ' && c < 0x7f ? (char)c : '?';
    }
    line[used] = '\0';
}

/* Append the PROXY header's part: " proxy=none", or its version, LOCAL flag and TLVs. */
static void add_proxy(char *line, size_t n, cio_transport_t *t)
{
    cio_extra_info_t info;
    const cio_proxy_header_t *h;
    size_t used = strlen(line);

    if (cio_transport_get_extra_info(t, "proxy", &info) != 0 || !info.object) {
        snprintf(line + used, n - used, " proxy=none");
        return;
    }
    h = info.object;
    snprintf(line + used, n - used, " proxy=v%u local=%d", (unsigned)h->version, h->local ? 1 : 0);
    add_tlv(line, n, "authority", h, CIO_PP2_TYPE_AUTHORITY, false);
    add_tlv(line, n, "unique_id", h, CIO_PP2_TYPE_UNIQUE_ID, true);
    add_tlv(line, n, "alpn", h, CIO_PP2_TYPE_ALPN, false);
}

static int whoami_made(cio_protocol_t *p, cio_transport_t *t)
{
    conn_t *c = (conn_t *)p;
    char line[LINE_MAX_LEN] = "";
    size_t used;

    c->t = t;
    c->closing = c->board->draining;
    add_addr(line, sizeof(line), "peer", t, "peername", NULL);
    add_addr(line, sizeof(line), "sock", t, "sockname", NULL);
    add_addr(line, sizeof(line), "real_peer", t, "socket_peername", "peername");
    add_addr(line, sizeof(line), "real_sock", t, "socket_sockname", "sockname");
    add_proxy(line, sizeof(line), t);
    used = strlen(line);
    snprintf(line + used, sizeof(line) - used, " pid=%d worker=%zu\n", (int)getpid(),
             cio_service_worker(c->ctx));
    return cio_transport_write(t, line, strlen(line));
}

static void whoami_lost(cio_protocol_t *p, int err)
{
    conn_t *c = (conn_t *)p;

    if (c->prev)
        c->prev->next = c->next;
    else
        c->board->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

/* Echo; once draining, close (after the echo is sent) at the first line end. */
static int whoami_data(cio_protocol_t *p, const void *data, size_t len)
{
    conn_t *c = (conn_t *)p;
    int rc = cio_transport_write(c->t, data, len);

    if (rc < 0)
        return rc;
    c->at_line_end = ((const char *)data)[len - 1] == '\n';
    if (c->closing && c->at_line_end)
        cio_transport_close(c->t);
    return 0;
}

static int whoami_pause_writing(cio_protocol_t *p)
{
    cio_transport_pause_reading(((conn_t *)p)->t);
    return 0;
}

static int whoami_resume_writing(cio_protocol_t *p)
{
    cio_transport_resume_reading(((conn_t *)p)->t);
    return 0;
}

static const cio_protocol_ops_t whoami_ops = {
    .connection_made = whoami_made,
    .connection_lost = whoami_lost,
    .data_received = whoami_data,
    .pause_writing = whoami_pause_writing,
    .resume_writing = whoami_resume_writing,
};

static cio_protocol_t *whoami_factory(cio_service_ctx_t *ctx)
{
    board_t *b = cio_service_listener_state(ctx);
    conn_t *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    *c = (conn_t){.base.ops = &whoami_ops, .ctx = ctx, .board = b, .next = b->head};
    if (b->head)
        b->head->prev = c;
    b->head = c;
    return &c->base;
}

static int whoami_listener_start(cio_service_ctx_t *ctx, void **state)
{
    *state = calloc(1, sizeof(board_t));
    return *state ? 0 : -ENOMEM;
}

/* The listener's connections are all gone by now (coreio/service.h). */
static void whoami_listener_stop(cio_service_ctx_t *ctx, void *state)
{
    free(state);
}

/*
 * The listener stopped accepting: each connection closes after its next
 * complete line is echoed. Closing an idle one now could cross a line the
 * client is sending, which would then be lost (or reset the connection).
 */
static void whoami_drain(cio_service_ctx_t *ctx)
{
    board_t *b = cio_service_listener_state(ctx);

    b->draining = true;
    for (conn_t *c = b->head; c; c = c->next)
        c->closing = true;
}

static const cio_service_t whoami = {
    .name = "whoami",
    .kinds = CIO_SERVICE_STREAM,
    .doc = "a line saying who the peer is (PROXY header included), then echo",
    .factory = whoami_factory,
    .listener_start = whoami_listener_start,
    .listener_stop = whoami_listener_stop,
    .drain = whoami_drain,
};

CIO_MODULE("whoami", "1.0", &whoami);
