/*
 * tools/coreio-bench.c: a load generator built on coreio itself.
 *
 *     coreio-bench [--mode echo|udp|http|line] [-c CONNS] [-s SIZE] [-p DEPTH]
 *                  [-d DURATION] [-t THREADS] [--warmup SECONDS] [--path PATH]
 *                  [--line TEMPLATE]... [--expect PREFIX] [--seed S]
 *                  [--new-conn] [--tls --tls-ca FILE [--tls-servername NAME]
 *                  [--tls-resume]] [--no-pin] [--json] HOST PORT
 *
 * The connections are spread over THREADS coreio workers (cio_workers_t),
 * each running its share on its own pinned loop (bench_run.c). The main
 * thread runs a loop of its own whose main task broadcasts the phases to the
 * workers: start, end of the warm-up, stop. Between them it sleeps, so it
 * costs nothing while the workers run; SIGINT or SIGTERM ends the run early,
 * and the figures up to then are still reported. See docs/coreio-bench.1.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_tls.h"

#define USAGE_ERROR 2
#define MAX_SECONDS (24 * 3600.0) /* the longest duration or warm-up */

/* The run: what the main task and the workers' phase functions share. */
typedef struct bench {
    bench_config_t cfg;
    cio_workers_t *workers;
    bench_thread_t **threads; /* one per worker, in worker order */
    cio_task_t *task;         /* the main task, cancelled by a signal */
    bool unresolved;          /* HOST and PORT did not resolve: nothing ran */
    bool interrupted;         /* a signal cut the run short */
    bool stopping;            /* the main task is stopping the workers */
} bench_t;

static const char *const mode_names[] = {"echo", "udp", "http", "line"};

static void usage(FILE *out)
{
    fprintf(out, "usage: coreio-bench [options] HOST PORT\n"
                 "  PORT is a number from 1 to 65535 or a service name (http)\n"
                 "  -m, --mode MODE         echo (TCP, default), udp, http or line\n"
                 "  -c, --connections N     connections in all (default 10)\n"
                 "  -s, --size BYTES        message size, echo and udp (default 64)\n"
                 "  -p, --pipeline DEPTH    requests in flight per connection (default 1)\n"
                 "  -d, --duration TIME     measured time: 10, 3s, 500ms, 1m (default 10s)\n"
                 "  -w, --warmup TIME       time run first and not measured (default 0)\n"
                 "  -t, --threads N         worker threads, one loop each (default 1)\n"
                 "      --path PATH         http: the path to GET (default /)\n"
                 "      --line TEMPLATE     line: a request line, with {n}, {conn}, {rand:N},\n"
                 "                          {{ and }}; several are sent in turn (required)\n"
                 "      --expect PREFIX     line: responses not starting with it are errors\n"
                 "      --seed S            line: seeds {rand:N} (default 1)\n"
                 "      --new-conn          a new connection per request (connections/s)\n"
                 "      --tls               echo, http, line: over TLS (needs --tls-ca)\n"
                 "      --tls-ca FILE       CA certificates (PEM) to verify the server with\n"
                 "      --tls-servername NAME  name to check and send (default: HOST)\n"
                 "      --tls-resume        resume a TLS session on each new connection\n"
                 "      --no-pin            do not pin the worker threads to cores\n"
                 "      --json              print one JSON object instead of text\n"
                 "  -h, --help              show this help\n");
}

/* Say what is wrong with the command line, then the usage; returns USAGE_ERROR. */
__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("coreio-bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage(stderr);
    return USAGE_ERROR;
}

/* Digits only (no sign, space or exponent), at most @p max: true with the value in *@p out. */
static bool whole_number(const char *arg, unsigned long long max, unsigned long long *out)
{
    unsigned long long v = 0;
    if (!*arg)
        return false;
    for (const char *c = arg; *c; c++) {
        unsigned d = (unsigned)(*c - '0');
        if (d > 9 || v > (max - d) / 10) /* v * 10 + d > max, without overflow */
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* A whole number from @p min to @p max, else a usage error naming @p opt. */
static int parse_count(const char *opt, const char *arg, size_t min, size_t max, size_t *out)
{
    unsigned long long v;
    if (!whole_number(arg, max, &v) || v < min)
        return usage_error("option %s: '%s' is not a whole number from %zu to %zu", opt, arg, min,
                           max);
    *out = (size_t)v;
    return 0;
}

/* The length of the plain decimal number @p arg starts with (digits, one point), or 0. */
static size_t decimal_length(const char *arg)
{
    size_t whole = strspn(arg, "0123456789");
    if (arg[whole] != '.')
        return whole;
    size_t fraction = strspn(arg + whole + 1, "0123456789");
    return whole + fraction > 0 ? whole + 1 + fraction : 0;
}

/*
 * A time: a plain decimal number of seconds, or with a unit: us, ms, s, m;
 * from 1 us (or 0 if @p zero_ok) to MAX_SECONDS.
 */
static int parse_seconds(const char *opt, const char *arg, bool zero_ok, double *out)
{
    static const struct {
        const char *suffix;
        double scale;
    } units[] = {{"", 1}, {"s", 1}, {"ms", 1e-3}, {"us", 1e-6}, {"m", 60}};
    size_t len = decimal_length(arg);
    for (size_t i = 0; len > 0 && i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(arg + len, units[i].suffix) != 0)
            continue;
        double v = strtod(arg, NULL) * units[i].scale;
        /* A rounding margin: "1us" is 1e-6 s, give or take the last bit. */
        if (v <= MAX_SECONDS && (v >= 0.999e-6 || (zero_ok && v == 0))) {
            *out = v;
            return 0;
        }
    }
    return usage_error("option %s: '%s' is not a time from %s to 24 hours (like 10, 3s, 500ms, 1m)",
                       opt, arg, zero_ok ? "0" : "1us");
}

static int parse_mode(const char *arg, bench_mode_t *out)
{
    for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
        if (strcmp(arg, mode_names[i]) == 0) {
            *out = (bench_mode_t)i;
            return 0;
        }
    }
    return usage_error("option %s: unknown mode '%s' (echo, udp, http or line)", "--mode", arg);
}

/*
 * @p arg as it can be quoted in a message: control bytes as \r, \n, \t or
 * \xNN, and cut short with "..." when it does not fit in @p outlen bytes.
 */
static const char *shown(const char *arg, char *out, size_t outlen)
{
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)arg; *c; c++) {
        char esc[5] = {(char)*c, '\0'};
        if (*c == '\r' || *c == '\n' || *c == '\t')
            snprintf(esc, sizeof(esc), "\\%c", *c == '\r' ? 'r' : *c == '\n' ? 'n' : 't');
        else if (*c < 0x20 || *c == 0x7f)
            snprintf(esc, sizeof(esc), "\\x%02x", *c);
        size_t k = strlen(esc);
        if (n + k + 4 > outlen) {
            memcpy(out + n, "...", 4);
            return out;
        }
        memcpy(out + n, esc, k);
        n += k;
    }
    out[n] = '\0';
    return out;
}

/* --line: parse the template and add it to the run's; out of memory is no usage error. */
static int parse_line(const char *arg, bench_config_t *cfg)
{
    char why[256], quoted[256];
    if (!cfg->lines && !(cfg->lines = bench_lines_new())) {
        fprintf(stderr, "coreio-bench: out of memory\n");
        return 1;
    }
    int rc = bench_lines_add(cfg->lines, arg, why, sizeof(why));
    if (rc == -ENOMEM) {
        fprintf(stderr, "coreio-bench: out of memory\n");
        return 1;
    }
    if (rc < 0)
        return usage_error("option %s: '%s': %s", "--line", shown(arg, quoted, sizeof(quoted)),
                           why);
    return 0;
}

static int parse_expect(const char *arg, const char **out)
{
    char quoted[256];
    if (strpbrk(arg, "\r\n"))
        return usage_error("option %s: '%s' holds a line end", "--expect",
                           shown(arg, quoted, sizeof(quoted)));
    *out = arg;
    return 0;
}

static int parse_seed(const char *arg, uint64_t *out)
{
    unsigned long long v;
    if (!whole_number(arg, UINT64_MAX, &v))
        return usage_error("option %s: '%s' is not a whole number from 0 to %" PRIu64, "--seed",
                           arg, UINT64_MAX);
    *out = v;
    return 0;
}

/* --new-conn and the TLS options; checked together once all are known (check_tls_options). */
static int parse_conn_option(int opt, const char *arg, bench_config_t *cfg)
{
    switch (opt) {
    case 'C':
        cfg->new_conn = true;
        return 0;
    case 'T':
        cfg->tls = true;
        return 0;
    case 'A':
        if (!*arg)
            return usage_error("option %s: an empty file name", "--tls-ca");
        cfg->tls_ca = arg;
        return 0;
    case 'N':
        if (!*arg)
            return usage_error("option %s: an empty name", "--tls-servername");
        cfg->tls_servername = arg;
        return 0;
    default:
        cfg->tls_resume = true;
        return 0;
    }
}

/* Apply one option: 0 to go on, USAGE_ERROR, 1 out of memory, or -1 once --help is printed. */
static int parse_option(int opt, const char *arg, bench_config_t *cfg)
{
    switch (opt) {
    case 'm':
        return parse_mode(arg, &cfg->mode);
    case 'c':
        return parse_count("-c", arg, 1, 1000000, &cfg->conns);
    case 's':
        return parse_count("-s", arg, 1, 64 * 1024 * 1024, &cfg->size);
    case 'p':
        return parse_count("-p", arg, 1, 65536, &cfg->depth);
    case 't':
        return parse_count("-t", arg, 1, 1024, &cfg->threads);
    case 'd':
        return parse_seconds("-d", arg, false, &cfg->duration);
    case 'w':
        return parse_seconds("--warmup", arg, true, &cfg->warmup);
    case 'P':
        if (arg[0] != '/' || strpbrk(arg, " \t\r\n"))
            return usage_error("option %s: '%s' is not a URL path (/...)", "--path", arg);
        cfg->path = arg;
        return 0;
    case 'L':
        return parse_line(arg, cfg);
    case 'E':
        return parse_expect(arg, &cfg->expect);
    case 'S':
        return parse_seed(arg, &cfg->seed);
    case 'n':
        cfg->pin = false;
        return 0;
    case 'C':
    case 'T':
    case 'A':
    case 'N':
    case 'R':
        return parse_conn_option(opt, arg, cfg);
    case 'j':
        cfg->json = true;
        return 0;
    case 'h':
        usage(stdout);
        return -1;
    default:
        usage(stderr); /* getopt_long has named the option */
        return USAGE_ERROR;
    }
}

/*
 * PORT: a number from 1 to 65535, or a service name (RFC 6335: letters,
 * digits and hyphens, at least one letter) known for the mode's protocol,
 * looked up in the services database, never over the network.
 */
static int check_port(const char *port, bench_mode_t mode)
{
    const char *proto = mode == BENCH_UDP ? "udp" : "tcp";
    unsigned long long v;
    if (port[strspn(port, "0123456789")] == '\0') {
        if (whole_number(port, 65535, &v) && v > 0)
            return 0;
        return usage_error("PORT: '%s' is not a port number from 1 to 65535", port);
    }
    bool name = port[strspn(port, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789-")] == '\0' &&
                strpbrk(port, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
    struct addrinfo hints = {.ai_socktype = mode == BENCH_UDP ? SOCK_DGRAM : SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    if (name && getaddrinfo(NULL, port, &hints, &res) == 0) {
        freeaddrinfo(res);
        return 0;
    }
    return usage_error("PORT: '%s' is neither a port number from 1 to 65535 nor a %s service name",
                       port, proto);
}

/* --line and --expect belong to the line mode, which needs a --line. */
static int check_line_options(bench_config_t *cfg)
{
    if (cfg->mode != BENCH_LINE) {
        if (cfg->lines)
            return usage_error("option %s: only with --mode line", "--line");
        if (cfg->expect)
            return usage_error("option %s: only with --mode line", "--expect");
        return 0;
    }
    if (!cfg->lines)
        return usage_error("--mode line: no request template (give one or more --line TEMPLATE)");
    cfg->size = bench_lines_max_len(cfg->lines); /* reported as the size */
    return 0;
}

/* The TLS options go together, with a stream mode; --new-conn takes one request at a time. */
static int check_tls_options(const bench_config_t *cfg)
{
    static const char *const needs_tls[] = {"--tls-ca", "--tls-servername", "--tls-resume"};
    const bool given[] = {cfg->tls_ca != NULL, cfg->tls_servername != NULL, cfg->tls_resume};
    for (size_t i = 0; !cfg->tls && i < sizeof(given) / sizeof(given[0]); i++)
        if (given[i])
            return usage_error("option %s: only with --tls", needs_tls[i]);
    if (cfg->tls && cfg->mode == BENCH_UDP)
        return usage_error("option %s: only with echo, http or line (no DTLS)", "--tls");
    if (cfg->tls && !cfg->tls_ca)
        return usage_error("option %s: needs --tls-ca FILE", "--tls");
    if (cfg->new_conn && cfg->mode == BENCH_UDP)
        return usage_error("option %s: only with echo, http or line", "--new-conn");
    if (cfg->new_conn && cfg->depth > 1)
        return usage_error("option %s: one request per connection, so no -p above 1", "--new-conn");
    return 0;
}

/*
 * The client context, once the options are known good: a CA file that cannot
 * be read is a usage error too, as nothing has run.
 */
static int make_tls_context(bench_config_t *cfg)
{
    if (!cfg->tls)
        return 0;
    int rc = bench_tls_context(&cfg->tls_ctx, cfg->tls_ca, cfg->tls_resume);
    if (rc == -ENOMEM) {
        fprintf(stderr, "coreio-bench: out of memory\n");
        return 1;
    }
    if (rc < 0)
        return usage_error("option %s: '%s': %s", "--tls-ca", cfg->tls_ca, cio_strerror(rc));
    return 0;
}

/*
 * Fill @p cfg from the command line. Returns 0, USAGE_ERROR, 1 when out of
 * memory, or -1 after --help; cfg->lines and cfg->tls_ctx are the caller's
 * to free in any case.
 */
static int parse_args(int argc, char **argv, bench_config_t *cfg)
{
    static const struct option longopts[] = {
        {"mode", required_argument, NULL, 'm'},
        {"connections", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 's'},
        {"pipeline", required_argument, NULL, 'p'},
        {"duration", required_argument, NULL, 'd'},
        {"threads", required_argument, NULL, 't'},
        {"warmup", required_argument, NULL, 'w'},
        {"path", required_argument, NULL, 'P'},
        {"no-pin", no_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"line", required_argument, NULL, 'L'},
        {"expect", required_argument, NULL, 'E'},
        {"seed", required_argument, NULL, 'S'},
        {"new-conn", no_argument, NULL, 'C'},
        {"tls", no_argument, NULL, 'T'},
        {"tls-ca", required_argument, NULL, 'A'},
        {"tls-servername", required_argument, NULL, 'N'},
        {"tls-resume", no_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *cfg = (bench_config_t){.mode = BENCH_ECHO,
                            .path = "/",
                            .conns = 10,
                            .threads = 1,
                            .size = 64,
                            .depth = 1,
                            .duration = 10,
                            .seed = 1,
                            .pin = true};
    int opt;
    while ((opt = getopt_long(argc, argv, "m:c:s:p:d:w:t:h", longopts, NULL)) != -1) {
        int rc = parse_option(opt, optarg, cfg);
        if (rc != 0)
            return rc;
    }
    if (argc - optind != 2)
        return usage_error("expected HOST and PORT, got %d argument(s)", argc - optind);
    cfg->host = argv[optind];
    cfg->port = argv[optind + 1];
    if (!*cfg->host)
        return usage_error("HOST: an empty name");
    if (cfg->mode == BENCH_UDP && (cfg->size < BENCH_UDP_HEADER || cfg->size > 65507))
        return usage_error("option -s: udp datagrams take %d to 65507 bytes", BENCH_UDP_HEADER);
    int rc = check_line_options(cfg);
    rc = rc ? rc : check_tls_options(cfg);
    rc = rc ? rc : check_port(cfg->port, cfg->mode);
    return rc ? rc : make_tls_context(cfg);
}

/* The bytes each request sends: SIZE filler bytes, or the HTTP request. */
static int make_request(bench_config_t *cfg)
{
    if (cfg->mode == BENCH_LINE)
        return 0; /* made per request from the templates */
    if (cfg->mode != BENCH_HTTP) {
        cfg->request = malloc(cfg->size);
        if (!cfg->request)
            return -ENOMEM;
        for (size_t i = 0; i < cfg->size; i++)
            cfg->request[i] = (char)('a' + i % 26);
        cfg->request_len = cfg->size;
        return 0;
    }
    bool v6 = strchr(cfg->host, ':') != NULL; /* an IPv6 literal goes in brackets */
    int n = asprintf(&cfg->request, "GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\n\r\n", cfg->path,
                     v6 ? "[" : "", cfg->host, v6 ? "]" : "", cfg->port);
    if (n < 0) {
        cfg->request = NULL;
        return -ENOMEM;
    }
    cfg->request_len = (size_t)n;
    return 0;
}

/* ---- the phases, run as tasks on every worker --------------------------- */

/* The thread of the worker this runs on. */
static bench_thread_t *own_thread(bench_t *b)
{
    cio_loop_t *loop = cio_get_running_loop();
    for (size_t i = 0; i < b->cfg.threads; i++)
        if (bench_thread_loop(b->threads[i]) == loop)
            return b->threads[i];
    return NULL;
}

static int start_phase(void *arg, void **result)
{
    bench_thread_t *t = own_thread(arg);
    return t ? bench_thread_start(t) : -ESRCH;
}

static int begin_phase(void *arg, void **result)
{
    bench_thread_t *t = own_thread(arg);
    if (t)
        bench_thread_begin(t);
    return t ? 0 : -ESRCH;
}

static int stop_phase(void *arg, void **result)
{
    bench_thread_t *t = own_thread(arg);
    return t ? bench_thread_stop(t) : -ESRCH;
}

/* ---- the main task ------------------------------------------------------ */

/* Run @p fn on every worker and wait until all have finished it. */
static int broadcast(bench_t *b, cio_task_fn fn)
{
    cio_future_t *f = cio_workers_broadcast(b->workers, fn, b);
    if (!f)
        return -ENOMEM;
    int rc = cio_await(f, NULL);
    cio_future_unref(f);
    return rc;
}

/* SIGINT, SIGTERM: cut the run short; the main task goes on to stop it. */
static int on_signal(void *arg)
{
    bench_t *b = arg;
    if (b->stopping)
        return 0; /* a signal queued before the handlers went must not cancel the stop */
    b->interrupted = true;
    cio_task_cancel(b->task, "interrupted");
    return 0;
}

/*
 * Resolve HOST and PORT once before any connection, as wrk does: a name that
 * does not resolve ends the run at once with the resolver's message, rather
 * than failing every connection for the whole run.
 */
static int resolve_target(bench_t *b)
{
    struct addrinfo hints = {.ai_socktype = b->cfg.mode == BENCH_UDP ? SOCK_DGRAM : SOCK_STREAM};
    cio_future_t *f =
        cio_loop_getaddrinfo(cio_get_running_loop(), b->cfg.host, b->cfg.port, &hints);
    int rc = f ? cio_await(f, NULL) : -ENOMEM;
    if (rc < 0) {
        fprintf(stderr, "coreio-bench: cannot resolve %s port %s: %s\n", b->cfg.host, b->cfg.port,
                cio_strerror(rc));
        b->unresolved = true;
    }
    cio_future_unref(f);
    return rc;
}

static int main_task(void *arg, void **result)
{
    bench_t *b = arg;
    cio_loop_t *loop = cio_get_running_loop();
    b->task = cio_current_task();
    if (resolve_target(b) < 0)
        return 0; /* said; main() exits with 1 */
    cio_loop_add_signal_handler(loop, SIGINT, on_signal, b);
    cio_loop_add_signal_handler(loop, SIGTERM, on_signal, b);
    int rc = broadcast(b, start_phase);
    if (rc == 0 && b->cfg.warmup > 0 && cio_sleep(b->cfg.warmup) == 0)
        rc = broadcast(b, begin_phase);
    if (rc == 0 && !b->interrupted)
        cio_sleep(b->cfg.duration); /* -ECANCELED: a signal cut it short */
    /* From here a second signal ends the process the default way. */
    b->stopping = true;
    cio_loop_remove_signal_handler(loop, SIGINT);
    cio_loop_remove_signal_handler(loop, SIGTERM);
    int stop_rc = broadcast(b, stop_phase);
    if (rc == -ECANCELED && b->interrupted)
        rc = 0;
    return rc < 0 ? rc : stop_rc;
}

/* ---- the report ---------------------------------------------------------- */

static const char *const err_kind_names[] = {"connect", "closed", "bad response",
                                             "unexpected response"};

static uint64_t total_errors(const bench_stats_t *s)
{
    uint64_t n = 0;
    for (int k = 0; k < BENCH_ERR_KINDS; k++)
        n += s->errors[k];
    return n;
}

/* Add the counters of @p src into @p dst; the first error kept is the first thread's. */
static void merge_stats(bench_stats_t *dst, const bench_stats_t *src)
{
    dst->requests += src->requests;
    for (int k = 0; k < BENCH_ERR_KINDS; k++)
        dst->errors[k] += src->errors[k];
    dst->lost += src->lost;
    dst->non_2xx += src->non_2xx;
    dst->bytes_in += src->bytes_in;
    dst->bytes_out += src->bytes_out;
    dst->connections += src->connections;
    dst->resumed += src->resumed;
    dst->seconds += src->seconds;
    if (dst->tls_version[0] == '\0') {
        memcpy(dst->tls_version, src->tls_version, sizeof(dst->tls_version));
        memcpy(dst->tls_cipher, src->tls_cipher, sizeof(dst->tls_cipher));
    }
    if (dst->first_error[0] == '\0') {
        dst->first_error_kind = src->first_error_kind;
        memcpy(dst->first_error, src->first_error, sizeof(dst->first_error));
    }
    bench_hist_merge(&dst->latency, &src->latency);
}

static double us(uint64_t ns)
{
    return (double)ns / 1e3;
}

static void print_json(const bench_config_t *cfg, const bench_stats_t *s, double secs)
{
    const bench_hist_t *h = &s->latency;
    printf("{\"mode\":\"%s\",\"connections\":%zu,\"threads\":%zu,\"size\":%zu,\"depth\":%zu,"
           "\"duration_s\":%.3f,\"requests\":%" PRIu64 ",\"requests_per_s\":%.1f,"
           "\"errors\":%" PRIu64 ",",
           mode_names[cfg->mode], cfg->conns, cfg->threads, cfg->size, cfg->depth, secs,
           s->requests, (double)s->requests / secs, total_errors(s));
    printf("\"error_kinds\":{\"connect\":%" PRIu64 ",\"closed\":%" PRIu64
           ",\"bad_response\":%" PRIu64,
           s->errors[BENCH_ERR_CONNECT], s->errors[BENCH_ERR_CLOSED], s->errors[BENCH_ERR_BAD]);
    if (cfg->mode == BENCH_LINE)
        printf(",\"unexpected\":%" PRIu64 "},\"templates\":%zu,\"seed\":%" PRIu64 ",",
               s->errors[BENCH_ERR_UNEXPECTED], bench_lines_count(cfg->lines), cfg->seed);
    else
        printf("},");
    if (cfg->mode == BENCH_UDP)
        printf("\"lost\":%" PRIu64 ",", s->lost);
    if (cfg->mode == BENCH_HTTP)
        printf("\"non_2xx\":%" PRIu64 ",", s->non_2xx);
    if (cfg->new_conn || cfg->tls)
        printf("\"new_conn\":%s,\"connections_made\":%" PRIu64 ",\"connections_per_s\":%.1f,",
               cfg->new_conn ? "true" : "false", s->connections, (double)s->connections / secs);
    if (cfg->tls)
        printf("\"tls\":{\"version\":\"%s\",\"cipher\":\"%s\",\"resume\":%s,\"resumed\":%" PRIu64
               "},",
               s->tls_version, s->tls_cipher, cfg->tls_resume ? "true" : "false", s->resumed);
    printf("\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ","
           "\"latency_us\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f}}\n",
           s->bytes_in, s->bytes_out, us(bench_hist_percentile(h, 50)),
           us(bench_hist_percentile(h, 99)), us(bench_hist_percentile(h, 99.9)), us(h->max));
}

static void print_text(const bench_config_t *cfg, const bench_stats_t *s, double secs)
{
    const bench_hist_t *h = &s->latency;
    printf("coreio-bench: %s %s:%s, %zu connection(s) on %zu thread(s), ", mode_names[cfg->mode],
           cfg->host, cfg->port, cfg->conns, cfg->threads);
    if (cfg->mode == BENCH_HTTP)
        printf("GET %s", cfg->path);
    else if (cfg->mode == BENCH_LINE)
        printf("%zu template(s) (requests up to %zu bytes), seed %" PRIu64,
               bench_lines_count(cfg->lines), cfg->size, cfg->seed);
    else
        printf("%zu-byte messages", cfg->size);
    printf(", depth %zu%s%s, %.2f s\n", cfg->depth, cfg->tls ? ", TLS" : "",
           cfg->new_conn ? ", a connection per request" : "", secs);
    printf("  requests  %" PRIu64 " (%.1f/s)\n", s->requests, (double)s->requests / secs);
    printf("  errors    %" PRIu64 " (connect %" PRIu64 ", closed %" PRIu64
           ", bad response %" PRIu64,
           total_errors(s), s->errors[BENCH_ERR_CONNECT], s->errors[BENCH_ERR_CLOSED],
           s->errors[BENCH_ERR_BAD]);
    if (cfg->mode == BENCH_LINE)
        printf(", unexpected %" PRIu64, s->errors[BENCH_ERR_UNEXPECTED]);
    printf(")\n");
    if (cfg->mode == BENCH_LINE && cfg->expect)
        printf("  expect    responses starting with '%s'\n", cfg->expect);
    if (cfg->mode == BENCH_UDP)
        printf("  lost      %" PRIu64 "\n", s->lost);
    if (cfg->mode == BENCH_HTTP)
        printf("  non-2xx   %" PRIu64 "\n", s->non_2xx);
    if (cfg->new_conn || cfg->tls)
        printf("  conns     %" PRIu64 " made (%.1f/s)%s\n", s->connections,
               (double)s->connections / secs, cfg->new_conn ? ", one per request" : "");
    if (cfg->tls)
        printf("  tls       %s %s, %" PRIu64 " resumed%s\n",
               s->tls_version[0] ? s->tls_version : "-", s->tls_cipher[0] ? s->tls_cipher : "-",
               s->resumed, cfg->tls_resume ? "" : " (no --tls-resume)");
    printf("  in        %.2f MB/s (%" PRIu64 " bytes)\n", (double)s->bytes_in / secs / 1e6,
           s->bytes_in);
    printf("  out       %.2f MB/s (%" PRIu64 " bytes)\n", (double)s->bytes_out / secs / 1e6,
           s->bytes_out);
    printf("  latency   p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n",
           us(bench_hist_percentile(h, 50)), us(bench_hist_percentile(h, 99)),
           us(bench_hist_percentile(h, 99.9)), us(h->max));
}

/* Merge the threads' figures and print them. Returns the exit status. */
static int report(const bench_t *b)
{
    bench_stats_t total = {0};
    if (bench_hist_init(&total.latency, BENCH_HIST_HIGHEST) < 0) {
        fprintf(stderr, "coreio-bench: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < b->cfg.threads; i++)
        merge_stats(&total, bench_thread_stats(b->threads[i]));
    double secs = total.seconds / (double)b->cfg.threads; /* the mean window */
    if (!(secs > 0))
        secs = 1e-9;
    if (b->cfg.json)
        print_json(&b->cfg, &total, secs);
    else
        print_text(&b->cfg, &total, secs);
    uint64_t errors = total_errors(&total);
    if (errors > 0 && total.first_error[0])
        fprintf(stderr, "coreio-bench: first error (%s): %s\n",
                err_kind_names[total.first_error_kind], total.first_error);
    else if (total.requests == 0)
        fprintf(stderr, "coreio-bench: no request completed\n");
    bench_hist_free(&total.latency);
    return total.requests > 0 && errors == 0 ? 0 : 1;
}

/* ---- main ---------------------------------------------------------------- */

/* Start the workers and give each its share of the connections. */
static int setup(bench_t *b)
{
    cio_workers_opts_t wopts = {.count = b->cfg.threads, .pin = b->cfg.pin ? CIO_ON : CIO_OFF};
    b->threads = calloc(b->cfg.threads, sizeof(*b->threads));
    if (!b->threads || make_request(&b->cfg) < 0)
        return -ENOMEM;
    b->workers = cio_workers_new(&wopts);
    if (!b->workers)
        return -EAGAIN;
    for (size_t i = 0, first = 0; i < b->cfg.threads; i++) {
        size_t share = b->cfg.conns / b->cfg.threads + (i < b->cfg.conns % b->cfg.threads);
        b->threads[i] = bench_thread_new(&b->cfg, cio_workers_loop(b->workers, i), share, first);
        if (!b->threads[i])
            return -ENOMEM;
        first += share;
    }
    return 0;
}

static void teardown(bench_t *b)
{
    cio_workers_free(b->workers); /* first: no loop may reach a thread's state after */
    for (size_t i = 0; b->threads && i < b->cfg.threads; i++)
        bench_thread_free(b->threads[i]);
    free(b->threads);
    free(b->cfg.request);
    bench_lines_free(b->cfg.lines);
    SSL_CTX_free(b->cfg.tls_ctx);
}

int main(int argc, char **argv)
{
    bench_t b = {0};
    int status = parse_args(argc, argv, &b.cfg);
    if (status != 0) {
        bench_lines_free(b.cfg.lines);
        SSL_CTX_free(b.cfg.tls_ctx);
        return status < 0 ? 0 : status;
    }
    signal(SIGPIPE, SIG_IGN);
    int rc = setup(&b);
    if (rc < 0) {
        fprintf(stderr, "coreio-bench: cannot start the workers: %s\n", cio_strerror(rc));
        teardown(&b);
        return 1;
    }
    rc = cio_run(main_task, &b, false, NULL);
    if (rc < 0)
        fprintf(stderr, "coreio-bench: the run failed: %s\n", cio_strerror(rc));
    /* Join the workers first: then no thread's figures can still change. */
    cio_workers_free(b.workers);
    b.workers = NULL;
    status = b.unresolved ? 1 : report(&b);
    teardown(&b);
    return rc < 0 ? 1 : status;
}
