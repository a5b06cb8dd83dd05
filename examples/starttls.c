/*
 * examples/starttls.c: upgrading a clear-text connection to TLS in the
 * middle (asyncio: loop.start_tls), both sides of a small SMTP-like line
 * protocol:
 *
 *     C: HELLO           S: 250 hello
 *     C: STARTTLS        S: 220 go ahead
 *     ... TLS handshake; from here on every line is echoed over TLS.
 *
 *     starttls server --cert server.pem --key server.key --port PORT [--host H]
 *     starttls client --ca ca.pem --port PORT [--host H] [message]
 *
 * The server stops cleanly on SIGINT or SIGTERM; the client exits 0 when
 * its message came back over TLS and the connection closed cleanly.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coreio.h>
#include <coreio/tls.h>

#define LINE_MAX_BYTES 1024

typedef struct starttls_options {
    const char *cert;
    const char *key;
    const char *ca;
    const char *host;
    const char *port;
    const char *message;
} starttls_options_t;

/* ---- server ---------------------------------------------------------------- */

/* One connection: the clear-text protocol first, then the TLS one, same transport. */
typedef struct session {
    cio_protocol_t plain;
    cio_protocol_t tls;
    cio_transport_t *transport;
    SSL_CTX *ctx;
    bool upgraded;
    size_t len;
    char line[LINE_MAX_BYTES];
} session_t;

static const cio_protocol_ops_t session_ops;

/* The session a protocol of it belongs to: the plain one comes first, TLS second. */
static session_t *session_of(cio_protocol_t *p)
{
    if (p->ops == &session_ops)
        return (session_t *)p;
    return (session_t *)((char *)p - offsetof(session_t, tls));
}

static void session_free(session_t *s)
{
    free(s);
}

static int reply(session_t *s, const char *text)
{
    return cio_transport_write(s->transport, text, strlen(text));
}

static int session_made(cio_protocol_t *p, cio_transport_t *transport)
{
    session_of(p)->transport = transport;
    return 0;
}

/* Before the upgrade only: after it the transport belongs to the TLS protocol. */
static void session_lost(cio_protocol_t *p, int err)
{
    printf("Lost before STARTTLS: %s\n", err ? cio_strerror(err) : "closed");
    fflush(stdout);
    session_free(session_of(p));
}

static int upgrade_done(cio_future_t *f, void *arg)
{
    int err = cio_future_error(f);
    if (err)
        printf("start_tls failed: %s (%s)\n", cio_strerror(err), cio_err_name(err));
    fflush(stdout);
    cio_future_unref(f);
    return 0;
}

/*
 * "220 go ahead" is written before start_tls, so it leaves in clear. The
 * client may not wait for it: its ClientHello can come in the same segment
 * as "STARTTLS\r\n", and then it is already in our hands, read from the
 * socket with the command. asyncio's start_tls has no way to take such
 * bytes and loses them, which hangs the handshake (uvloop#707); coreio
 * takes them as initial_data and feeds them to TLS first.
 */
static int upgrade(session_t *s, const char *rest, size_t rest_len)
{
    int rc = reply(s, "220 go ahead\r\n");
    if (rc < 0)
        return rc;
    printf("STARTTLS: %zu bytes of TLS came with the command\n", rest_len);
    fflush(stdout);
    /* start_tls copies them: the read buffer they are in may go. */
    cio_tls_opts_t opts = {.initial_data = rest, .initial_len = rest_len};
    cio_future_t *f = cio_loop_start_tls(cio_transport_get_loop(s->transport), s->transport,
                                         &s->tls, s->ctx, true, NULL, &opts);
    if (!f)
        return -EINVAL;
    s->upgraded = true;
    if (cio_future_add_done_callback(f, upgrade_done, NULL) < 0)
        cio_future_unref(f);
    return 0;
}

/* One clear-text command, without its line end; @p rest is what followed it. */
static int on_command(session_t *s, const char *cmd, size_t n, const char *rest, size_t rest_len)
{
    if (n == 5 && memcmp(cmd, "HELLO", 5) == 0)
        return reply(s, "250 hello\r\n");
    if (n == 8 && memcmp(cmd, "STARTTLS", 8) == 0)
        return upgrade(s, rest, rest_len);
    return reply(s, "500 unknown command\r\n");
}

/* Cut the clear text into lines; only an incomplete line is kept between reads. */
static int session_data(cio_protocol_t *p, const void *data, size_t len)
{
    session_t *s = session_of(p);
    const char *d = data;
    while (len > 0 && !s->upgraded) {
        const char *nl = memchr(d, '\n', len);
        size_t take = nl ? (size_t)(nl - d) + 1 : len;
        if (take > sizeof(s->line) - s->len) {
            int rc = reply(s, "500 line too long\r\n");
            cio_transport_close(s->transport); /* not our protocol: let it go */
            return rc;
        }
        memcpy(s->line + s->len, d, take);
        s->len += take;
        d += take;
        len -= take;
        if (!nl)
            break;
        size_t n = s->len - 1 - (s->len >= 2 && s->line[s->len - 2] == '\r');
        s->len = 0;
        int rc = on_command(s, s->line, n, d, len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static const cio_protocol_ops_t session_ops = {
    .connection_made = session_made,
    .data_received = session_data,
    .connection_lost = session_lost,
};

static int tls_made(cio_protocol_t *p, cio_transport_t *transport)
{
    cio_extra_info_t cipher;
    if (cio_transport_get_extra_info(transport, "cipher", &cipher) == 0)
        printf("TLS up: %s, %s\n", cipher.version, cipher.name);
    fflush(stdout);
    return 0;
}

static int tls_data(cio_protocol_t *p, const void *data, size_t len)
{
    return cio_transport_write(session_of(p)->transport, data, len);
}

static void tls_lost(cio_protocol_t *p, int err)
{
    if (err)
        printf("TLS connection lost: %s (%s)\n", cio_strerror(err), cio_err_name(err));
    else
        printf("TLS connection closed cleanly\n");
    fflush(stdout);
    session_free(session_of(p));
}

static const cio_protocol_ops_t session_tls_ops = {
    .connection_made = tls_made,
    .data_received = tls_data,
    .connection_lost = tls_lost,
};

static cio_protocol_t *session_factory(void *arg)
{
    session_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->plain.ops = &session_ops;
    s->tls.ops = &session_tls_ops;
    s->ctx = arg;
    return &s->plain;
}

static int ask_exit(void *arg)
{
    cio_future_cancel(arg, "signal");
    return 0;
}

/* Serve until SIGINT or SIGTERM, then close every client and wait for them. */
static int serve_until_signal(cio_loop_t *loop, cio_server_t *server)
{
    cio_future_t *forever = cio_server_serve_forever(server);
    int rc = forever ? cio_loop_add_signal_handler(loop, SIGINT, ask_exit, forever) : -ENOMEM;
    if (rc == 0)
        rc = cio_loop_add_signal_handler(loop, SIGTERM, ask_exit, forever);
    if (rc == 0 && cio_await(forever, NULL) != -ECANCELED)
        rc = -EPROTO;
    cio_loop_remove_signal_handler(loop, SIGINT);
    cio_loop_remove_signal_handler(loop, SIGTERM);
    cio_future_unref(forever);
    cio_server_close(server);
    cio_server_close_clients(server);
    cio_future_t *closed = cio_server_wait_closed(server);
    int wait_rc = closed ? cio_await(closed, NULL) : -ENOMEM;
    cio_future_unref(closed);
    printf("Stopped\n");
    fflush(stdout);
    return rc < 0 ? rc : wait_rc;
}

static int serve(const starttls_options_t *o)
{
    cio_loop_t *loop = cio_get_running_loop();
    SSL_CTX *ctx = NULL;
    int rc = cio_tls_server_context(&ctx, o->cert, o->key);
    if (rc < 0)
        return rc;
    cio_server_t *server = NULL;
    cio_future_t *f = cio_loop_create_server(loop, session_factory, ctx, o->host, o->port, NULL);
    rc = f ? cio_await(f, (void **)&server) : -ENOMEM;
    cio_future_unref(f);
    if (rc == 0) {
        printf("Serving on %s:%s\n", o->host, o->port);
        fflush(stdout);
        rc = serve_until_signal(loop, server);
        cio_server_free(server);
    }
    SSL_CTX_free(ctx); /* no session is left to borrow it */
    return rc;
}

/* ---- client ---------------------------------------------------------------- */

/* The client's side of the connection; it lives in main(), past the loop. */
typedef struct client {
    cio_protocol_t plain;
    cio_protocol_t tls;
    cio_transport_t *transport;
    cio_future_t *waiter; /* woken when a line is complete or the connection is gone */
    bool lost;
    int err;
    size_t len;
    char line[LINE_MAX_BYTES];
} client_t;

static const cio_protocol_ops_t client_ops;

/* The client a protocol of it belongs to: the plain one comes first, TLS second. */
static client_t *client_of(cio_protocol_t *p)
{
    if (p->ops == &client_ops)
        return (client_t *)p;
    return (client_t *)((char *)p - offsetof(client_t, tls));
}

static void client_wake(client_t *c)
{
    if (c->waiter && !cio_future_done(c->waiter))
        cio_future_set_result(c->waiter, NULL);
}

static int client_made(cio_protocol_t *p, cio_transport_t *transport)
{
    client_of(p)->transport = transport;
    return 0;
}

/* Lines come the same way in clear and over TLS; both protocols use this. */
static int client_data(cio_protocol_t *p, const void *data, size_t len)
{
    client_t *c = client_of(p);
    if (len > sizeof(c->line) - c->len)
        return -EMSGSIZE;
    memcpy(c->line + c->len, data, len);
    c->len += len;
    if (memchr(c->line, '\n', c->len))
        client_wake(c);
    return 0;
}

static void client_lost(cio_protocol_t *p, int err)
{
    client_t *c = client_of(p);
    c->lost = true;
    c->err = err;
    client_wake(c);
}

static const cio_protocol_ops_t client_ops = {
    .connection_made = client_made,
    .data_received = client_data,
    .connection_lost = client_lost,
};

static const cio_protocol_ops_t client_tls_ops = {
    .data_received = client_data,
    .connection_lost = client_lost,
};

static cio_protocol_t *client_factory(void *arg)
{
    return arg;
}

/* Inside the task: the next line, without its line end, into @p out. */
static int read_line(client_t *c, char *out, size_t size)
{
    for (;;) {
        char *nl = memchr(c->line, '\n', c->len);
        if (nl) {
            size_t n = (size_t)(nl - c->line);
            snprintf(out, size, "%.*s", (int)(n > 0 && nl[-1] == '\r' ? n - 1 : n), c->line);
            c->len -= n + 1;
            memmove(c->line, nl + 1, c->len);
            return 0;
        }
        if (c->lost)
            return c->err ? c->err : -ECONNRESET;
        c->waiter = cio_loop_create_future(cio_get_running_loop());
        int rc = c->waiter ? cio_await(c->waiter, NULL) : -ENOMEM;
        cio_future_unref(c->waiter);
        c->waiter = NULL;
        if (rc < 0)
            return rc;
    }
}

/* Send @p cmd and check that the answer starts with @p code. */
static int command(client_t *c, const char *cmd, const char *code)
{
    char line[LINE_MAX_BYTES];
    printf("C: %s\n", cmd);
    int rc = cio_transport_write(c->transport, cmd, strlen(cmd));
    if (rc == 0)
        rc = cio_transport_write(c->transport, "\r\n", 2);
    if (rc == 0)
        rc = read_line(c, line, sizeof(line));
    if (rc < 0)
        return rc;
    printf("S: %s\n", line);
    return strncmp(line, code, strlen(code)) == 0 ? 0 : -EPROTO;
}

/*
 * After "220 go ahead" the server sends nothing until our ClientHello, so
 * the line buffer should be empty here; whatever it holds belongs to TLS
 * all the same and goes in as initial_data.
 */
static int client_upgrade(client_t *c, SSL_CTX *ctx, const char *host)
{
    cio_tls_opts_t opts = {.initial_data = c->line, .initial_len = c->len};
    c->len = 0;
    cio_future_t *f =
        cio_loop_start_tls(cio_get_running_loop(), c->transport, &c->tls, ctx, false, host, &opts);
    int rc = f ? cio_await(f, NULL) : -EINVAL;
    cio_future_unref(f);
    cio_extra_info_t cipher;
    if (rc == 0 && cio_transport_get_extra_info(c->transport, "cipher", &cipher) == 0)
        printf("TLS up: %s, %s\n", cipher.version, cipher.name);
    return rc;
}

/* Send the message over TLS, read its echo, close with close_notify. */
static int client_echo(client_t *c, const char *message)
{
    char line[LINE_MAX_BYTES];
    printf("C: %s\n", message);
    int rc = cio_transport_write(c->transport, message, strlen(message));
    if (rc == 0)
        rc = cio_transport_write(c->transport, "\r\n", 2);
    if (rc == 0)
        rc = read_line(c, line, sizeof(line));
    if (rc < 0)
        return rc;
    printf("S: %s\n", line);
    cio_transport_close(c->transport);
    while (!c->lost) {
        c->waiter = cio_loop_create_future(cio_get_running_loop());
        rc = c->waiter ? cio_await(c->waiter, NULL) : -ENOMEM;
        cio_future_unref(c->waiter);
        c->waiter = NULL;
        if (rc < 0)
            return rc;
    }
    printf("Closed: %s\n", c->err ? cio_strerror(c->err) : "cleanly");
    return strcmp(line, message) == 0 ? c->err : -EPROTO;
}

static int client_run(const starttls_options_t *o, client_t *c)
{
    SSL_CTX *ctx = NULL;
    int rc = cio_tls_client_context(&ctx, o->ca);
    if (rc < 0)
        return rc;
    cio_future_t *f = cio_loop_create_connection(cio_get_running_loop(), client_factory, &c->plain,
                                                 o->host, o->port, NULL);
    rc = f ? cio_await(f, NULL) : -ENOMEM;
    cio_future_unref(f);
    if (rc == 0)
        rc = command(c, "HELLO", "250");
    if (rc == 0)
        rc = command(c, "STARTTLS", "220");
    if (rc == 0)
        rc = client_upgrade(c, ctx, o->host);
    if (rc == 0)
        rc = client_echo(c, o->message);
    else if (c->transport && !c->lost)
        cio_transport_abort(c->transport);
    SSL_CTX_free(ctx);
    return rc;
}

/* ---- main ------------------------------------------------------------------ */

static int run(void *arg, void **result)
{
    void **args = arg;
    const starttls_options_t *o = args[0];
    return args[1] ? client_run(o, args[1]) : serve(o);
}

static void usage(void)
{
    fprintf(stderr, "usage: starttls server --cert FILE --key FILE --port PORT [--host HOST]\n"
                    "       starttls client --ca FILE --port PORT [--host HOST] [message]\n");
    exit(2);
}

static void parse_options(int argc, char **argv, starttls_options_t *o)
{
    static const struct option longopts[] = {
        {"cert", required_argument, NULL, 'c'}, {"key", required_argument, NULL, 'k'},
        {"ca", required_argument, NULL, 'a'},   {"port", required_argument, NULL, 'p'},
        {"host", required_argument, NULL, 'H'}, {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->cert = optarg;
            break;
        case 'k':
            o->key = optarg;
            break;
        case 'a':
            o->ca = optarg;
            break;
        case 'p':
            o->port = optarg;
            break;
        case 'H':
            o->host = optarg;
            break;
        default:
            usage();
        }
    }
}

int main(int argc, char **argv)
{
    starttls_options_t o = {.host = "127.0.0.1", .message = "hello over TLS"};
    bool server = argc > 1 && strcmp(argv[1], "server") == 0;
    if (argc < 2 || (!server && strcmp(argv[1], "client") != 0))
        usage();
    parse_options(argc - 1, argv + 1, &o);
    if (!o.port || (server && (!o.cert || !o.key || optind != argc - 1)) ||
        (!server && (!o.ca || argc - 1 - optind > 1)))
        usage();
    if (!server && optind < argc - 1)
        o.message = argv[optind + 1];
    /* The client's protocols outlive the task: a failed handshake may still report to them. */
    static client_t client;
    client.plain.ops = &client_ops;
    client.tls.ops = &client_tls_ops;
    void *args[2] = {&o, server ? NULL : &client};
    int rc = cio_run(run, args, false, NULL);
    if (rc < 0)
        fprintf(stderr, "starttls: %s (%s)\n", cio_strerror(rc), cio_err_name(rc));
    return rc < 0;
}
