/*
 * tests/test_config.c: the ini configuration. The embedded default and every
 * key's default; every key read; every kind of error with its exact
 * "FILE:LINE: message", all of a file's errors at once and in line order;
 * the edges of sizes, durations, numbers, booleans and addresses; lines and
 * names at and past their limits (and across inih's own 200-byte line
 * buffer); unreadable files; the files of tests/config/; the helpers
 * cio_config_find_listener(), cio_config_listener_same_socket() and
 * cio_config_listener_same_proxy(); the PROXY keys and their rules. The
 * limits: the error list bounded at CIO_CONFIG_ERRORS_MAX (in text and in
 * memory), the file size, huge lines, and 100,000 listeners in one file.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <unistd.h>

#include "coreio/config.h"
#include "testutil.h"

/* What every listener below starts with; the key under test is line 4. */
#define LISTENER_HEAD "[listener a]\nservice = echo\naddress = 127.0.0.1:7007\n"

/* Parse @p text as the file "t"; errors must be NULL on success. */
static cio_config_t *parse_ok(const char *text)
{
    char *errors = (char *)"unset";
    cio_config_t *c = cio_config_parse(text, "t", &errors);
    ck_assert_msg(c != NULL, "rejected:\n%s\n--- errors:\n%s", text, errors ? errors : "(none)");
    ck_assert_ptr_null(errors);
    return c;
}

/* @p text must fail with exactly @p expected, every error of it. */
static void check_errors(const char *text, const char *expected)
{
    char *errors = NULL;
    cio_config_t *c = cio_config_parse(text, "t", &errors);
    ck_assert_msg(c == NULL, "accepted:\n%s", text);
    ck_assert_ptr_nonnull(errors);
    ck_assert_msg(strcmp(errors, expected) == 0, "for:\n%s\n--- got:\n%s--- expected:\n%s", text,
                  errors, expected);
    free(errors);
}

typedef struct error_case {
    const char *text;
    const char *errors;
} error_case_t;

static void check_cases(const error_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check_errors(cases[i].text, cases[i].errors);
}

#define CHECK_CASES(cases) check_cases((cases), sizeof(cases) / sizeof((cases)[0]))

/* The text of a listener with one more line, @p key = @p value (line 4). */
static const char *listener_with(char *buf, size_t size, const char *key, const char *value)
{
    snprintf(buf, size, LISTENER_HEAD "%s = %s\n", key, value);
    return buf;
}

/* A listener with write_buffer_high = @p value (line 4) and a low limit of 0 (line 5). */
static const char *high_with(char *buf, size_t size, const char *value)
{
    snprintf(buf, size, LISTENER_HEAD "write_buffer_high = %s\nwrite_buffer_low = 0\n", value);
    return buf;
}

/* The directory of tests/config: $CIO_CONFIG_DIR, $srcdir/tests/config, or next to this file. */
static const char *config_dir(char *buf, size_t size)
{
    const char *dir = getenv("CIO_CONFIG_DIR");
    const char *srcdir = getenv("srcdir");
    if (dir && *dir)
        snprintf(buf, size, "%s", dir);
    else if (srcdir && *srcdir)
        snprintf(buf, size, "%s/tests/config", srcdir);
    else {
        const char *slash = strrchr(__FILE__, '/');
        snprintf(buf, size, "%.*sconfig", slash ? (int)(slash - __FILE__ + 1) : 0, __FILE__);
    }
    return buf;
}

/* Write @p len bytes of @p text to a new file named after the mkstemp() template @p path. */
static void write_temp(char *path, const char *text, size_t len)
{
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    for (size_t done = 0; done < len;) {
        ssize_t n = write(fd, text + done, len - done);
        ck_assert_int_gt(n, 0);
        done += (size_t)n;
    }
    close(fd);
}

/* ---- defaults ------------------------------------------------------------------ */

/* The embedded default parses and says what the documentation says. */
START_TEST(test_config_default_text_parses_with_documented_values)
{
    cio_config_t *c = parse_ok(cio_config_default_text());
    ck_assert_uint_eq(c->workers, 0);
    ck_assert_str_eq(c->admin_host, "127.0.0.1");
    ck_assert_str_eq(c->admin_port, "9100");
    ck_assert_uint_eq(c->nlisteners, 3);
    static const struct {
        const char *name, *service;
        cio_config_proto_t protocol;
        const char *port;
    } want[] = {
        {"echo-tcp", "echo", CIO_CONFIG_TCP, "7007"},
        {"echo-udp", "echo", CIO_CONFIG_UDP, "7007"},
        {"http", "http-hello", CIO_CONFIG_TCP, "8080"},
    };
    for (size_t i = 0; i < 3; i++) {
        const cio_config_listener_t *l = &c->listeners[i];
        ck_assert_str_eq(l->name, want[i].name);
        ck_assert_str_eq(l->service, want[i].service);
        ck_assert_int_eq(l->protocol, want[i].protocol);
        ck_assert_str_eq(l->host, "127.0.0.1");
        ck_assert_str_eq(l->port, want[i].port);
        ck_assert_int_eq(l->balance, CIO_BALANCE_REUSEPORT);
    }
    ck_assert_str_eq(c->file, "t");
    cio_config_free(c);
}
END_TEST

/* An empty file is valid: every [global] default, no listener. */
START_TEST(test_config_empty_text_has_every_global_default)
{
    cio_config_t *c = parse_ok("");
    ck_assert_uint_eq(c->workers, 0);
    ck_assert_int_eq(c->placement, CIO_PLACE_SPREAD);
    ck_assert_ptr_null(c->cores);
    ck_assert_uint_eq(c->ncores, 0);
    ck_assert(c->pin);
    ck_assert_uint_eq(c->executor_threads, 0);
    ck_assert_int_eq(c->log_level, CIO_LOG_INFO);
    ck_assert(!c->debug);
    ck_assert_double_eq(c->drain_timeout, 10.0);
    ck_assert_double_eq(c->upgrade_timeout, 120.0);
    ck_assert_double_eq(c->idle_poll, 50e-6);
    ck_assert_str_eq(c->admin_host, "127.0.0.1");
    ck_assert_str_eq(c->admin_port, "9100");
    ck_assert_ptr_null(c->agent_host); /* no agent-check listener */
    ck_assert_ptr_null(c->agent_port);
    ck_assert_uint_eq(c->nlisteners, 0);
    ck_assert_ptr_null(c->listeners);
    cio_config_free(c);

    /* Comments, blank lines and an empty [global] change nothing. */
    c = parse_ok("; nothing\n\n# still nothing\n[global]\n   \n");
    ck_assert_uint_eq(c->workers, 0);
    ck_assert_str_eq(c->admin_port, "9100");
    cio_config_free(c);
}
END_TEST

/* A listener with only its required keys gets the documented defaults. */
START_TEST(test_config_listener_keys_have_documented_defaults)
{
    cio_config_t *c = parse_ok("\n" LISTENER_HEAD);
    ck_assert_uint_eq(c->nlisteners, 1);
    const cio_config_listener_t *l = &c->listeners[0];
    ck_assert_str_eq(l->name, "a");
    ck_assert_uint_eq(l->line, 2);
    ck_assert_int_eq(l->protocol, CIO_CONFIG_TCP);
    ck_assert_str_eq(l->host, "127.0.0.1");
    ck_assert_str_eq(l->port, "7007");
    ck_assert_ptr_null(l->path);
    ck_assert_int_eq(l->balance, CIO_BALANCE_REUSEPORT);
    ck_assert_int_eq(l->backlog, 511);
    ck_assert_double_eq(l->idle_timeout, 60.0);
    ck_assert_uint_eq(l->write_high, 64 * 1024);
    ck_assert_uint_eq(l->write_low, 16 * 1024);
    ck_assert_ptr_null(l->tls.certificate);
    ck_assert_ptr_null(l->tls.key);
    ck_assert_ptr_null(l->tls.ca);
    ck_assert_int_eq(l->tls.verify_client, CIO_CONFIG_VERIFY_NO);
    ck_assert_int_eq(l->tls.min_version, CIO_CONFIG_TLS12);
    ck_assert_double_eq(l->tls.handshake_timeout, 60.0);
    ck_assert_uint_eq(l->proxy_protocol, 0);
    ck_assert_ptr_null(l->proxy_trusted);
    ck_assert_uint_eq(l->nproxy_trusted, 0);
    cio_config_free(c);
}
END_TEST

/* A unix listener balances by hand-off unless told otherwise; udp by reuseport. */
START_TEST(test_config_balance_default_depends_on_protocol)
{
    cio_config_t *c = parse_ok("[listener u]\nservice = echo\nprotocol = unix\n"
                               "address = /run/coreio/echo.sock\n"
                               "[listener d]\nservice = echo\nprotocol = udp\naddress = *:7\n");
    ck_assert_int_eq(c->listeners[0].protocol, CIO_CONFIG_UNIX);
    ck_assert_str_eq(c->listeners[0].path, "/run/coreio/echo.sock");
    ck_assert_ptr_null(c->listeners[0].host);
    ck_assert_ptr_null(c->listeners[0].port);
    ck_assert_int_eq(c->listeners[0].balance, CIO_BALANCE_HANDOFF);
    ck_assert_int_eq(c->listeners[1].balance, CIO_BALANCE_REUSEPORT);
    ck_assert_ptr_null(c->listeners[1].host); /* "*": every interface */
    ck_assert_str_eq(c->listeners[1].port, "7");
    cio_config_free(c);
}
END_TEST

/* ---- every key ----------------------------------------------------------------- */

/* Every key of [global] is read into its field, in any case for keywords. */
START_TEST(test_config_every_global_key_is_read)
{
    cio_config_t *c = parse_ok("[global]\n"
                               "workers = 3\n"
                               "placement = LIST\n"
                               "cores = 4, 2,7\n"
                               "pin = off\n"
                               "executor_threads = 8\n"
                               "log_level = Debug\n"
                               "debug = yes\n"
                               "drain_timeout = 1.5m\n"
                               "upgrade_timeout = 750ms\n"
                               "admin = [::1]:9200\n"
                               "agent = 127.0.0.1:9201\n");
    ck_assert_uint_eq(c->workers, 3);
    ck_assert_int_eq(c->placement, CIO_PLACE_LIST);
    ck_assert_uint_eq(c->ncores, 3);
    ck_assert_uint_eq(c->cores[0], 4);
    ck_assert_uint_eq(c->cores[1], 2);
    ck_assert_uint_eq(c->cores[2], 7);
    ck_assert(!c->pin);
    ck_assert_uint_eq(c->executor_threads, 8);
    ck_assert_int_eq(c->log_level, CIO_LOG_DEBUG);
    ck_assert(c->debug);
    ck_assert_double_eq(c->drain_timeout, 90.0);
    ck_assert_double_eq(c->upgrade_timeout, 0.75);
    ck_assert_str_eq(c->admin_host, "::1");
    ck_assert_str_eq(c->admin_port, "9200");
    ck_assert_str_eq(c->agent_host, "127.0.0.1");
    ck_assert_str_eq(c->agent_port, "9201");
    cio_config_free(c);

    c = parse_ok("[global]\nplacement = pack\nlog_level = error\nadmin = off\nagent = OFF\n");
    ck_assert_int_eq(c->placement, CIO_PLACE_PACK);
    ck_assert_int_eq(c->log_level, CIO_LOG_ERROR);
    ck_assert_ptr_null(c->admin_host);
    ck_assert_ptr_null(c->admin_port);
    ck_assert_ptr_null(c->agent_host);
    ck_assert_ptr_null(c->agent_port);
    cio_config_free(c);

    /* placement = list with workers = 0: the list says how many. */
    c = parse_ok("[global]\nplacement = list\ncores = 1,0\nlog_level = warning\nadmin = *:9\n"
                 "agent = [::1]:010\n");
    ck_assert_uint_eq(c->workers, 0);
    ck_assert_uint_eq(c->ncores, 2);
    ck_assert_int_eq(c->log_level, CIO_LOG_WARNING);
    ck_assert_ptr_null(c->admin_host);
    ck_assert_str_eq(c->admin_port, "9");
    ck_assert_str_eq(c->agent_host, "::1");
    ck_assert_str_eq(c->agent_port, "10");
    cio_config_free(c);
}
END_TEST

/* Every key of [listener NAME] is read into its field. */
START_TEST(test_config_every_listener_key_is_read)
{
    cio_config_t *c = parse_ok("[listener web.front_1]\n"
                               "service = http-hello\n"
                               "protocol = TCP\n"
                               "address = [fe80::1%eth0]:080\n"
                               "balance = handoff\n"
                               "backlog = 65535\n"
                               "idle_timeout = 250ms\n"
                               "write_buffer_high = 1M\n"
                               "write_buffer_low = 512K\n");
    const cio_config_listener_t *l = &c->listeners[0];
    ck_assert_str_eq(l->name, "web.front_1");
    ck_assert_str_eq(l->service, "http-hello");
    ck_assert_int_eq(l->protocol, CIO_CONFIG_TCP);
    ck_assert_str_eq(l->host, "fe80::1%eth0");
    ck_assert_str_eq(l->port, "80");
    ck_assert_int_eq(l->balance, CIO_BALANCE_HANDOFF);
    ck_assert_int_eq(l->backlog, 65535);
    ck_assert_double_eq_tol(l->idle_timeout, 0.25, 1e-12);
    ck_assert_uint_eq(l->write_high, 1024 * 1024);
    ck_assert_uint_eq(l->write_low, 512 * 1024);
    cio_config_free(c);
}
END_TEST

/* Every tls_* key is read, with the line of each file; keywords in any case. */
START_TEST(test_config_every_tls_key_is_read)
{
    cio_config_t *c = parse_ok(LISTENER_HEAD "tls_certificate = /etc/coreio/server.pem\n"
                                             "tls_key = /etc/coreio/server.key\n"
                                             "tls_ca = /etc/coreio/clients.pem\n"
                                             "tls_verify_client = Optional\n"
                                             "tls_min_version = tlsv1.3\n"
                                             "tls_handshake_timeout = 2500ms\n");
    const cio_config_tls_t *t = &c->listeners[0].tls;
    ck_assert_str_eq(t->certificate, "/etc/coreio/server.pem");
    ck_assert_str_eq(t->key, "/etc/coreio/server.key");
    ck_assert_str_eq(t->ca, "/etc/coreio/clients.pem");
    ck_assert_uint_eq(t->certificate_line, 4);
    ck_assert_uint_eq(t->key_line, 5);
    ck_assert_uint_eq(t->ca_line, 6);
    ck_assert_int_eq(t->verify_client, CIO_CONFIG_VERIFY_OPTIONAL);
    ck_assert_int_eq(t->min_version, CIO_CONFIG_TLS13);
    ck_assert_double_eq_tol(t->handshake_timeout, 2.5, 1e-12);
    cio_config_free(c);

    /* A unix listener may speak TLS too; yes requires a client certificate. */
    c = parse_ok("[listener u]\nservice = echo\nprotocol = unix\naddress = /run/e.sock\n"
                 "tls_certificate = /c.pem\ntls_key = /k.pem\ntls_ca = /ca.pem\n"
                 "tls_verify_client = yes\ntls_min_version = TLSv1.2\n");
    ck_assert_int_eq(c->listeners[0].tls.verify_client, CIO_CONFIG_VERIFY_YES);
    ck_assert_int_eq(c->listeners[0].tls.min_version, CIO_CONFIG_TLS12);
    ck_assert_double_eq(c->listeners[0].tls.handshake_timeout, 60.0);
    cio_config_free(c);
}
END_TEST

/* Relative TLS files are joined to the directory of the file, as [module] path is. */
START_TEST(test_config_tls_relative_paths_follow_the_file)
{
    static const char text[] = LISTENER_HEAD "tls_certificate = certs/server.pem\n"
                                             "tls_key = ../keys/server.key\n"
                                             "tls_ca = /abs/ca.pem\n"
                                             "tls_verify_client = yes\n";
    static const struct {
        const char *file, *cert, *key;
    } cases[] = {
        {"/etc/coreio/coreio.ini", "/etc/coreio/certs/server.pem",
         "/etc/coreio/../keys/server.key"},
        {"conf/a.ini", "conf/certs/server.pem", "conf/../keys/server.key"},
        {"/coreio.ini", "/certs/server.pem", "/../keys/server.key"},
        /* In the working directory, or a text without a file: as written. */
        {"coreio.ini", "certs/server.pem", "../keys/server.key"},
        {"<text>", "certs/server.pem", "../keys/server.key"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *errors = NULL;
        cio_config_t *c = cio_config_parse(text, cases[i].file, &errors);
        ck_assert_msg(c != NULL, "%s: %s", cases[i].file, errors);
        ck_assert_str_eq(c->listeners[0].tls.certificate, cases[i].cert);
        ck_assert_str_eq(c->listeners[0].tls.key, cases[i].key);
        ck_assert_str_eq(c->listeners[0].tls.ca, "/abs/ca.pem");
        cio_config_free(c);
    }

    /* cio_config_load() names the file as it was given: relative to its directory. */
    char path[] = "/tmp/cio-test-config-XXXXXX";
    write_temp(path, text, sizeof(text) - 1);
    char *errors = NULL;
    cio_config_t *c = cio_config_load(path, &errors);
    ck_assert_msg(c != NULL, "%s", errors);
    ck_assert_str_eq(c->listeners[0].tls.certificate, "/tmp/certs/server.pem");
    ck_assert_str_eq(c->listeners[0].tls.key, "/tmp/../keys/server.key");
    cio_config_free(c);
    unlink(path);
}
END_TEST

/* Syntax: ':' as separator, inline ';' comments, indented lines (no continuations), CRLF, BOM. */
START_TEST(test_config_syntax_variants_are_read)
{
    cio_config_t *c = parse_ok("\xEF\xBB\xBF[global]\r\n"
                               "workers: 2 ; two\r\n"
                               "  pin = no\r\n"
                               "   [listener a]   ; first\r\n"
                               "service = echo\r\n"
                               "    address = 127.0.0.1:7007\r\n"
                               "backlog=7\r\n");
    ck_assert_uint_eq(c->workers, 2);
    ck_assert(!c->pin);
    ck_assert_str_eq(c->listeners[0].service, "echo");
    ck_assert_str_eq(c->listeners[0].port, "7007");
    ck_assert_uint_eq(c->listeners[0].line, 4);
    ck_assert_int_eq(c->listeners[0].backlog, 7);
    cio_config_free(c);

    /* A ';' with no blank before it starts no comment, so this value is no number. */
    check_errors(LISTENER_HEAD "backlog=7;x\n", "t:4: backlog: \"7;x\" is not a number\n");
}
END_TEST

/* The files of tests/config/: good.ini holds every key and loads. */
START_TEST(test_config_good_file_loads)
{
    char dir[512], path[600];
    char *errors = NULL;
    snprintf(path, sizeof(path), "%s/good.ini", config_dir(dir, sizeof(dir)));
    cio_config_t *c = cio_config_load(path, &errors);
    ck_assert_msg(c != NULL, "%s", errors ? errors : path);
    ck_assert_str_eq(c->file, path);
    ck_assert_int_eq(c->placement, CIO_PLACE_LIST);
    ck_assert_uint_eq(c->ncores, 1);
    ck_assert_double_eq(c->drain_timeout, 2.5);
    ck_assert_double_eq(c->upgrade_timeout, 30.0);
    ck_assert_uint_eq(c->nlisteners, 5);
    const cio_config_listener_t *u = cio_config_find_listener(c, "echo_unix");
    ck_assert_ptr_nonnull(u);
    ck_assert_int_eq(u->protocol, CIO_CONFIG_UNIX);
    ck_assert_double_eq_tol(u->idle_timeout, 0.5, 1e-12);
    ck_assert_str_eq(cio_config_find_listener(c, "discard.v6")->host, "::1");
    ck_assert_double_eq(cio_config_find_listener(c, "http")->idle_timeout, 90.0);
    cio_config_free(c);
}
END_TEST

/* Each tests/config/bad-*.ini fails, first at the line its "; expect: LINE" names. */
START_TEST(test_config_bad_files_fail_at_expected_line)
{
    char dir[512], pattern[600];
    glob_t g;
    snprintf(pattern, sizeof(pattern), "%s/bad-*.ini", config_dir(dir, sizeof(dir)));
    ck_assert_msg(glob(pattern, 0, NULL, &g) == 0, "no %s", pattern);
    ck_assert_uint_ge(g.gl_pathc, 10);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *path = g.gl_pathv[i];
        char *errors = NULL, first[64], want[700];
        unsigned line = 0;
        FILE *f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        ck_assert_msg(fgets(first, sizeof(first), f) && sscanf(first, "; expect: %u", &line) == 1,
                      "%s: no '; expect: LINE' first", path);
        fclose(f);
        ck_assert_ptr_null(cio_config_load(path, &errors));
        ck_assert_ptr_nonnull(errors);
        snprintf(want, sizeof(want), "%s:%u: ", path, line);
        ck_assert_msg(strncmp(errors, want, strlen(want)) == 0, "%s: expected line %u, got:\n%s",
                      path, line, errors);
        free(errors);
    }
    globfree(&g);
}
END_TEST

/* ---- errors -------------------------------------------------------------------- */

/* Sections: unknown, malformed, duplicated, named badly, keys outside any. */
START_TEST(test_config_section_errors_name_their_line)
{
    static const error_case_t cases[] = {
        {"[global]\n[globals]\nworkers = x\n", "t:2: unknown section [globals]\n"},
        {"[Listener a]\n", "t:1: unknown section [Listener a]\n"},
        {"\n[]\n", "t:2: unknown section []\n"},
        {"workers = 1\n\n[global]\npin = no\n", "t:1: key \"workers\" is outside any section\n"},
        {"[global\nworkers = x\n", "t:1: section header without its closing ']'\n"},
        {"[global] workers = 1\n", "t:1: unexpected text after [global]: \"workers = 1\"\n"},
        {"[global]\n[global]\nworkers = x\n", "t:2: duplicate section [global] (first at line 1)\n"
                                              "t:3: workers: \"x\" is not a number\n"},
        {"\n" LISTENER_HEAD "[listener a]\nservice = echo\naddress = 127.0.0.1:1\n",
         "t:5: duplicate section [listener a] (first at line 2)\n"},
        {"[listener]\n", "t:1: [listener]: expected [listener NAME], the NAME made of letters, "
                         "digits, '_', '.' and '-'\n"},
        {"[listener  a]\n", "t:1: [listener  a]: expected [listener NAME], the NAME made of "
                            "letters, digits, '_', '.' and '-'\n"},
        {"[listener a/b]\n", "t:1: [listener a/b]: expected [listener NAME], the NAME made of "
                             "letters, digits, '_', '.' and '-'\n"},
    };
    CHECK_CASES(cases);
}
END_TEST

/* Keys: unknown, duplicated, empty, reserved, missing, or no key at all. */
START_TEST(test_config_key_errors_name_their_line)
{
    static const error_case_t cases[] = {
        {"[global]\nworker = 1\n", "t:2: unknown key \"worker\" in [global]\n"},
        {LISTENER_HEAD "workers = 1\n", "t:4: unknown key \"workers\" in [listener a]\n"},
        {"[global]\nworkers = 1\npin = no\nworkers = 1\n",
         "t:4: duplicate key \"workers\" (first set at line 2)\n"},
        {LISTENER_HEAD "service = discard\n",
         "t:4: duplicate key \"service\" (first set at line 2)\n"},
        {"[global]\nworkers =\n", "t:2: workers: empty value\n"},
        {LISTENER_HEAD "tls_certificate = /etc/c.pem\ntls_key = /etc/k.pem\ntls_ca =\n",
         "t:6: tls_ca: empty value\n"},
        {LISTENER_HEAD "tls_key = /etc/k.pem\ntls_key = /etc/k2.pem\n",
         "t:4: tls_key without tls_certificate\n"
         "t:5: duplicate key \"tls_key\" (first set at line 4)\n"},
        {"\n[listener a]\nprotocol = udp\n",
         "t:2: [listener a]: missing required key \"service\"\n"
         "t:2: [listener a]: missing required key \"address\"\n"},
        {"[listener a]\naddress = *:1\n[global]\n",
         "t:1: [listener a]: missing required key \"service\"\n"},
        {"[global]\nworkers\n", "t:2: expected KEY = VALUE, [SECTION] or a comment\n"},
        {"[global]\n= 4\n", "t:2: unknown key \"\" in [global]\n"},
        {"[global]\nwork ers = 4\n", "t:2: unknown key \"work ers\" in [global]\n"},
        {"[global]\nworkers ; = 4\n", "t:2: expected KEY = VALUE, [SECTION] or a comment\n"},
    };
    CHECK_CASES(cases);
}
END_TEST

/* Bad values of [global] keys: the key, the value and why. */
START_TEST(test_config_global_value_errors)
{
    static const error_case_t cases[] = {
        {"[global]\nworkers = abc\n", "t:2: workers: \"abc\" is not a number\n"},
        {"[global]\nworkers = 1025\n", "t:2: workers: 1025 is out of range (0..1024)\n"},
        {"[global]\nexecutor_threads = -1\n",
         "t:2: executor_threads: -1 is out of range (0..1024)\n"},
        {"[global]\nplacement = random\n",
         "t:2: placement: \"random\" is not one of spread, pack, list\n"},
        {"[global]\npin = maybe\n",
         "t:2: pin: \"maybe\" is not a boolean (yes/no, on/off, true/false, 1/0)\n"},
        {"[global]\ndebug = 2\n",
         "t:2: debug: \"2\" is not a boolean (yes/no, on/off, true/false, 1/0)\n"},
        {"[global]\nlog_level = warn\n",
         "t:2: log_level: \"warn\" is not one of debug, info, warning, error\n"},
        {"[global]\nidle_poll = 2ms\n", "t:2: idle_poll: 2ms is out of range (0..1ms)\n"},
        {"[global]\ndrain_timeout = soon\n",
         "t:2: drain_timeout: \"soon\" is not a duration (a number with ms, s or m)\n"},
        {"[global]\nupgrade_timeout = 0\n",
         "t:2: upgrade_timeout: 0 is out of range (1ms..365 days)\n"},
        {"[global]\nupgrade_timeout = later\n",
         "t:2: upgrade_timeout: \"later\" is not a duration (a number with ms, s or m)\n"},
        {"[global]\nadmin = 9100\n", "t:2: admin: expected HOST:PORT\n"},
        {"[global]\nadmin = none\n", "t:2: admin: expected HOST:PORT\n"},
        {"[global]\nagent = 9101\n", "t:2: agent: expected HOST:PORT\n"},
        {"[global]\nagent = 127.0.0.1:99999\n",
         "t:2: agent: port 99999 is out of range (0..65535)\n"},
        {"[global]\nagent = *:1\nagent = off\n",
         "t:3: duplicate key \"agent\" (first set at line 2)\n"},
        {"[global]\ncores = 0,1\n", "t:2: cores: only valid with placement = list\n"},
        {"[global]\n\nplacement = list\n", "t:3: placement = list needs a cores list\n"},
        {"[global]\nworkers = 2\nplacement = list\ncores = 0,1,2\n",
         "t:4: cores: 3 listed, but workers = 2\n"},
        {"[global]\nplacement = list\ncores = 0,,1\n",
         "t:3: cores: \"0,,1\" is not a list of core numbers\n"},
        {"[global]\nplacement = list\ncores = 0,1,\n",
         "t:3: cores: \"0,1,\" is not a list of core numbers\n"},
        {"[global]\nplacement = list\ncores = 0,x\n",
         "t:3: cores: \"0,x\" is not a list of core numbers\n"},
        {"[global]\nplacement = list\ncores = 3,1,3\n", "t:3: cores: core 3 is listed twice\n"},
        {"[global]\nplacement = list\ncores = 65535,0,64,65535\n",
         "t:3: cores: core 65535 is listed twice\n"},
        /* Each list is judged alone: cores of an earlier list, good or not, are no duplicates. */
        {"[global]\nplacement = list\ncores = 3,1,64\n[global]\nplacement = list\n"
         "cores = 64,3,1,5,5\n[global]\nplacement = list\ncores = 5,1,3,64\n",
         "t:4: duplicate section [global] (first at line 1)\n"
         "t:6: cores: core 5 is listed twice\n"
         "t:7: duplicate section [global] (first at line 1)\n"},
        {"[global]\nplacement = list\ncores = 65536\n",
         "t:3: cores: core 65536 is out of range (0..65535)\n"},
    };
    CHECK_CASES(cases);
}
END_TEST

/* Bad values of [listener] keys, and keys that contradict each other. */
START_TEST(test_config_listener_value_errors)
{
    static const error_case_t cases[] = {
        {LISTENER_HEAD "protocol = sctp\n",
         "t:4: protocol: \"sctp\" is not one of tcp, udp, unix\n"},
        {LISTENER_HEAD "balance = random\n",
         "t:4: balance: \"random\" is not one of reuseport, handoff\n"},
        {LISTENER_HEAD "backlog = 0\n", "t:4: backlog: 0 is out of range (1..65535)\n"},
        {LISTENER_HEAD "backlog = 65536\n", "t:4: backlog: 65536 is out of range (1..65535)\n"},
        {LISTENER_HEAD "idle_timeout = -5s\n",
         "t:4: idle_timeout: -5s is out of range (0s..365 days)\n"},
        {LISTENER_HEAD "write_buffer_high = 2G\n",
         "t:4: write_buffer_high: 2G is out of range (0..1G)\n"},
        {LISTENER_HEAD "write_buffer_low = 1T\n",
         "t:4: write_buffer_low: \"1T\" is not a size (bytes, or a number with K, M or G)\n"},
        {LISTENER_HEAD "service = a b\n", "t:4: duplicate key \"service\" (first set at line 2)\n"},
        {"[listener a]\nservice = a b\naddress = *:1\n",
         "t:2: service: \"a b\" is not a service name (letters, digits, '_', '.', '-')\n"},
        {LISTENER_HEAD "protocol = udp\nbalance = handoff\n",
         "t:5: balance: a udp listener needs reuseport\n"},
        {"[listener a]\nservice = echo\nbalance = reuseport\nprotocol = unix\naddress = /s\n",
         "t:3: balance: a unix listener needs handoff\n"},
        {LISTENER_HEAD "write_buffer_high = 8K\n",
         "t:4: write_buffer_low (16K) must not exceed write_buffer_high (8K)\n"},
        {LISTENER_HEAD "write_buffer_low = 65537\n",
         "t:4: write_buffer_low (65537) must not exceed write_buffer_high (64K)\n"},
        {LISTENER_HEAD "write_buffer_high = 1M\nwrite_buffer_low = 2M\n",
         "t:5: write_buffer_low (2M) must not exceed write_buffer_high (1M)\n"},
    };
    CHECK_CASES(cases);
    /* Equal limits are allowed, zero included. */
    cio_config_t *c = parse_ok(LISTENER_HEAD "write_buffer_high = 0\nwrite_buffer_low = 0\n");
    ck_assert_uint_eq(c->listeners[0].write_high, 0);
    cio_config_free(c);
}
END_TEST

/* TLS: bad values, keys that need others, and udp listeners, each at its line. */
START_TEST(test_config_tls_errors_name_their_line)
{
#define TLS_HEAD LISTENER_HEAD "tls_certificate = /c.pem\ntls_key = /k.pem\n"
    static const error_case_t cases[] = {
        {TLS_HEAD "tls_verify_client = maybe\n",
         "t:6: tls_verify_client: \"maybe\" is not one of no, optional, yes\n"},
        {TLS_HEAD "tls_verify_client = true\n",
         "t:6: tls_verify_client: \"true\" is not one of no, optional, yes\n"},
        {TLS_HEAD "tls_min_version = TLSv1.1\n",
         "t:6: tls_min_version: \"TLSv1.1\" is not one of TLSv1.2, TLSv1.3\n"},
        {TLS_HEAD "tls_min_version = 1.3\n",
         "t:6: tls_min_version: \"1.3\" is not one of TLSv1.2, TLSv1.3\n"},
        {TLS_HEAD "tls_handshake_timeout = 0\n",
         "t:6: tls_handshake_timeout: 0 is out of range (1ms..365 days)\n"},
        {TLS_HEAD "tls_handshake_timeout = soon\n",
         "t:6: tls_handshake_timeout: \"soon\" is not a duration (a number with ms, s or m)\n"},
        {TLS_HEAD "tls_handshake_timeout = 525601m\n",
         "t:6: tls_handshake_timeout: 525601m is out of range (1ms..365 days)\n"},
        /* A certificate needs its key, and the key a certificate. */
        {LISTENER_HEAD "tls_certificate = /c.pem\n", "t:4: tls_certificate without tls_key\n"},
        {LISTENER_HEAD "\ntls_key = /k.pem\n", "t:5: tls_key without tls_certificate\n"},
        /* Without a certificate the listener is plaintext: the other keys are mistakes. */
        {LISTENER_HEAD "tls_ca = /ca.pem\ntls_verify_client = yes\ntls_min_version = TLSv1.3\n"
                       "tls_handshake_timeout = 5s\n",
         "t:4: tls_ca without tls_certificate\n"
         "t:5: tls_verify_client without tls_certificate\n"
         "t:6: tls_min_version without tls_certificate\n"
         "t:7: tls_handshake_timeout without tls_certificate\n"},
        /* Verifying clients needs the CAs to verify them with, and the CAs a verification. */
        {TLS_HEAD "tls_verify_client = yes\n", "t:6: tls_verify_client = yes needs tls_ca\n"},
        {TLS_HEAD "tls_verify_client = optional\n",
         "t:6: tls_verify_client = optional needs tls_ca\n"},
        {TLS_HEAD "tls_ca = /ca.pem\n",
         "t:6: tls_ca: only used with tls_verify_client = optional or yes\n"},
        {TLS_HEAD "tls_ca = /ca.pem\ntls_verify_client = no\n",
         "t:6: tls_ca: only used with tls_verify_client = optional or yes\n"},
        /* A udp listener cannot speak TLS: each key is blamed, the protocol wherever it is. */
        {TLS_HEAD "protocol = udp\ntls_min_version = TLSv1.3\n",
         "t:4: tls_certificate: a udp listener cannot speak TLS\n"
         "t:5: tls_key: a udp listener cannot speak TLS\n"
         "t:7: tls_min_version: a udp listener cannot speak TLS\n"},
        {"[listener d]\nservice = echo\nprotocol = udp\naddress = *:7\ntls_certificate = c.pem\n",
         "t:5: tls_certificate: a udp listener cannot speak TLS\n"},
        /* The scratch copy of a duplicate section is judged too. */
        {LISTENER_HEAD "[listener a]\nservice = echo\naddress = *:1\ntls_key = /k.pem\n",
         "t:4: duplicate section [listener a] (first at line 1)\n"
         "t:7: tls_key without tls_certificate\n"},
    };
#undef TLS_HEAD
    CHECK_CASES(cases);
}
END_TEST

/* The bytes of an IPv4 or IPv6 address, for comparing with a parsed range. */
static void expect_range(const cio_cidr_t *r, int family, const char *addr, unsigned prefix)
{
    unsigned char want[16] = {0};
    ck_assert_int_eq(inet_pton(family, addr, want), 1);
    ck_assert_int_eq(r->family, family);
    ck_assert_uint_eq(r->prefix, prefix);
    ck_assert_msg(memcmp(r->addr, want, family == AF_INET ? 4 : 16) == 0, "range of %s", addr);
}

/* proxy_protocol and proxy_trusted: the versions as bits, the ranges in order,
 * separated by commas, blanks or both; a lone address is a full-length prefix. */
START_TEST(test_config_proxy_keys_are_read)
{
    cio_config_t *c = parse_ok(LISTENER_HEAD "proxy_protocol = V2\n"
                                             "proxy_trusted = 10.0.0.0/8, 192.168.1.7 ,\t"
                                             "2001:db8::/32  ::1,,0.0.0.0/0\n");
    const cio_config_listener_t *l = &c->listeners[0];
    ck_assert_uint_eq(l->proxy_protocol, CIO_PROXY_V2);
    ck_assert_uint_eq(l->nproxy_trusted, 5);
    expect_range(&l->proxy_trusted[0], AF_INET, "10.0.0.0", 8);
    expect_range(&l->proxy_trusted[1], AF_INET, "192.168.1.7", 32);
    expect_range(&l->proxy_trusted[2], AF_INET6, "2001:db8::", 32);
    expect_range(&l->proxy_trusted[3], AF_INET6, "::1", 128);
    expect_range(&l->proxy_trusted[4], AF_INET, "0.0.0.0", 0);
    cio_config_free(c);

    /* v1 and any; a unix listener, whose peers are local, takes them too; off is the default. */
    c = parse_ok("[listener u]\nservice = echo\nprotocol = unix\naddress = /run/e.sock\n"
                 "proxy_protocol = v1\nproxy_trusted = 127.0.0.1\n"
                 "[listener a]\nservice = echo\naddress = *:1\nproxy_protocol = any\n"
                 "proxy_trusted = fd00::/8\n"
                 "[listener b]\nservice = echo\naddress = *:2\nproxy_protocol = off\n"
                 "[listener d]\nservice = echo\nprotocol = udp\naddress = *:3\n"
                 "proxy_protocol = Off\n");
    ck_assert_uint_eq(c->listeners[0].proxy_protocol, CIO_PROXY_V1);
    ck_assert_uint_eq(c->listeners[0].nproxy_trusted, 1);
    ck_assert_uint_eq(c->listeners[1].proxy_protocol, CIO_PROXY_ANY);
    expect_range(&c->listeners[1].proxy_trusted[0], AF_INET6, "fd00::", 8);
    for (size_t i = 2; i < 4; i++) {
        ck_assert_uint_eq(c->listeners[i].proxy_protocol, 0);
        ck_assert_ptr_null(c->listeners[i].proxy_trusted);
    }
    cio_config_free(c);
}
END_TEST

/* A whole file behind a balancer: the agent, PROXY listeners beside plain ones and TLS. */
START_TEST(test_config_file_behind_a_balancer_loads)
{
    cio_config_t *c = parse_ok("[global]\nadmin = 127.0.0.1:9100\nagent = 127.0.0.1:9101\n\n"
                               "[listener web]\nservice = http-hello\naddress = *:8080\n"
                               "proxy_protocol = v2\nproxy_trusted = 10.1.0.0/16 10.2.0.5\n\n"
                               "[listener tls]\nservice = echo\naddress = *:8443\n"
                               "tls_certificate = /c.pem\ntls_key = /k.pem\n"
                               "proxy_protocol = any\nproxy_trusted = ::1, 127.0.0.0/8\n\n"
                               "[listener plain]\nservice = echo\naddress = 127.0.0.1:7007\n");
    ck_assert_str_eq(c->agent_port, "9101");
    ck_assert_uint_eq(c->nlisteners, 3);
    ck_assert_uint_eq(cio_config_find_listener(c, "web")->nproxy_trusted, 2);
    ck_assert_uint_eq(cio_config_find_listener(c, "tls")->proxy_protocol, CIO_PROXY_ANY);
    ck_assert_uint_eq(cio_config_find_listener(c, "plain")->proxy_protocol, 0);
    cio_config_free(c);
}
END_TEST

/* Every PROXY rule, each at its line: a header needs trusted peers, the ranges need
 * a header, no udp listener reads headers, and a bad range is named. */
START_TEST(test_config_proxy_errors_name_their_line)
{
#define UDP_HEAD "[listener d]\nservice = echo\nprotocol = udp\naddress = *:7\n"
    static const error_case_t cases[] = {
        {LISTENER_HEAD "proxy_protocol = v3\n",
         "t:4: proxy_protocol: \"v3\" is not one of off, v1, v2, any\n"},
        {LISTENER_HEAD "proxy_protocol = yes\n",
         "t:4: proxy_protocol: \"yes\" is not one of off, v1, v2, any\n"},
        {LISTENER_HEAD "proxy_protocol = v2\n",
         "t:4: proxy_protocol = v2 needs proxy_trusted (the peers that may send a header)\n"},
        {LISTENER_HEAD "proxy_protocol = any\n",
         "t:4: proxy_protocol = any needs proxy_trusted (the peers that may send a header)\n"},
        {LISTENER_HEAD "proxy_trusted = 10.0.0.0/8\n",
         "t:4: proxy_trusted: only used with proxy_protocol = v1, v2 or any\n"},
        {LISTENER_HEAD "proxy_trusted = 10.0.0.0/8\nproxy_protocol = off\n",
         "t:4: proxy_trusted: only used with proxy_protocol = v1, v2 or any\n"},
        {UDP_HEAD "proxy_protocol = v2\n",
         "t:5: proxy_protocol = v2 needs proxy_trusted (the peers that may send a header)\n"},
        {UDP_HEAD "proxy_protocol = any\nproxy_trusted = 10.0.0.1\n",
         "t:5: proxy_protocol = any: udp listeners take v2 only (v1 is for streams)\n"},
        {UDP_HEAD "proxy_protocol = v1\nproxy_trusted = 10.0.0.1\n",
         "t:5: proxy_protocol = v1: udp listeners take v2 only (v1 is for streams)\n"},
        {UDP_HEAD "proxy_trusted = 10.0.0.1\n",
         "t:5: proxy_trusted: only used with proxy_protocol = v1, v2 or any\n"},
        /* The protocol may come after the keys it limits. */
        {"[listener d]\nservice = echo\naddress = *:7\nproxy_protocol = v1\n"
         "proxy_trusted = ::1\nprotocol = udp\n",
         "t:4: proxy_protocol = v1: udp listeners take v2 only (v1 is for streams)\n"},
        /* A bad range is named; the others around it do not hide it. */
        {LISTENER_HEAD "proxy_protocol = v1\nproxy_trusted = 10.0.0.0/8, 10.0.0.0/33\n",
         "t:5: proxy_trusted: \"10.0.0.0/33\" is not an address range (ADDRESS/PREFIX or an "
         "address)\n"},
        {LISTENER_HEAD "proxy_protocol = v1\nproxy_trusted = 10.0.0.1/8\n",
         "t:5: proxy_trusted: \"10.0.0.1/8\" is not an address range (ADDRESS/PREFIX or an "
         "address)\n"},
        {LISTENER_HEAD "proxy_protocol = v1\nproxy_trusted = ::1 balancer.example ::2\n",
         "t:5: proxy_trusted: \"balancer.example\" is not an address range (ADDRESS/PREFIX or "
         "an address)\n"},
        {LISTENER_HEAD "proxy_protocol = v1\nproxy_trusted = 10.0.0.0/8;x\n",
         "t:5: proxy_trusted: \"10.0.0.0/8;x\" is not an address range (ADDRESS/PREFIX or an "
         "address)\n"},
        {LISTENER_HEAD "proxy_protocol = v1\nproxy_trusted = "
                       "0000000000000000000000000000000000000000000000000000000000000000001\n",
         "t:5: proxy_trusted: "
         "\"0000000000000000000000000000000000000000000000000000000000000000001\" is not an "
         "address range (ADDRESS/PREFIX or an address)\n"},
        {LISTENER_HEAD "proxy_protocol = v1\nproxy_trusted = , ,\n",
         "t:5: proxy_trusted: \", ,\" lists no address range\n"},
        /* A refused value is blamed alone: its partner is not blamed for it. */
        {LISTENER_HEAD "proxy_protocol = v9\nproxy_trusted = 10.0.0.0/8\n",
         "t:4: proxy_protocol: \"v9\" is not one of off, v1, v2, any\n"},
        {LISTENER_HEAD "proxy_protocol = v2\nproxy_trusted = 10.0.0.0/99\n",
         "t:5: proxy_trusted: \"10.0.0.0/99\" is not an address range (ADDRESS/PREFIX or an "
         "address)\n"},
        {LISTENER_HEAD "proxy_protocol = v2\nproxy_trusted = ::1\nproxy_trusted = ::2\n",
         "t:6: duplicate key \"proxy_trusted\" (first set at line 5)\n"},
        {LISTENER_HEAD "proxy_protocol =\n", "t:4: proxy_protocol: empty value\n"},
        /* The scratch copy of a duplicate section is judged, and freed, too. */
        {LISTENER_HEAD "[listener a]\nservice = echo\naddress = *:1\nproxy_trusted = ::1\n",
         "t:4: duplicate section [listener a] (first at line 1)\n"
         "t:7: proxy_trusted: only used with proxy_protocol = v1, v2 or any\n"},
    };
#undef UDP_HEAD
    CHECK_CASES(cases);
}
END_TEST

/* Addresses: HOST:PORT, [V6]:PORT, *:PORT, absolute paths for unix only. */
START_TEST(test_config_address_errors)
{
#define ADDRESS(a) "[listener a]\nservice = echo\naddress = " a "\n"
#define UNIX(a)    "[listener a]\nservice = echo\nprotocol = unix\naddress = " a "\n"
    static const error_case_t cases[] = {
        {ADDRESS("127.0.0.1"), "t:3: address: expected HOST:PORT\n"},
        {ADDRESS(":80"), "t:3: address: \"\" is not a host name or address\n"},
        {ADDRESS("127.0.0.1:"), "t:3: address: port \"\" is not a number\n"},
        {ADDRESS("127.0.0.1:http"), "t:3: address: port \"http\" is not a number\n"},
        {ADDRESS("127.0.0.1:65536"), "t:3: address: port 65536 is out of range (0..65535)\n"},
        {ADDRESS("127.0.0.1:-1"), "t:3: address: port -1 is out of range (0..65535)\n"},
        {ADDRESS("::1:80"), "t:3: address: an IPv6 address goes in brackets: [::1]:PORT\n"},
        {ADDRESS("[::1]80"), "t:3: address: expected [IPV6]:PORT\n"},
        {ADDRESS("[::1:80"), "t:3: address: expected [IPV6]:PORT\n"},
        {ADDRESS("[127.0.0.1]:80"), "t:3: address: \"127.0.0.1\" is not an IPv6 address\n"},
        {ADDRESS("a b:80"), "t:3: address: \"a b\" is not a host name or address\n"},
        {ADDRESS("/run/echo.sock"), "t:3: address: a path needs protocol = unix\n"},
        {UNIX("echo.sock"),
         "t:4: address: a unix listener needs an absolute path, not \"echo.sock\"\n"},
        {UNIX("127.0.0.1:80"),
         "t:4: address: a unix listener needs an absolute path, not \"127.0.0.1:80\"\n"},
        {UNIX("/0123456789012345678901234567890123456789012345678901234567890123456789"
              "0123456789012345678901234567890123456"),
         "t:4: address: path too long (108 bytes, at most 107)\n"},
    };
    CHECK_CASES(cases);
    /* 107 bytes is the longest path sun_path holds. */
    cio_config_t *c = parse_ok(UNIX("/012345678901234567890123456789012345678901234567890123456789"
                                    "0123456789012345678901234567890123456789012345"));
    ck_assert_uint_eq(strlen(c->listeners[0].path), 107);
    cio_config_free(c);
    /* Host names, IPv4 and IPv6 literals, the wildcard; ports 0..65535. */
    static const char *const good[] = {
        "localhost:0",   "*:65535", "[::]:1", "[::ffff:1.2.3.4]:2", "my-host_1.example.com:443",
        "10.0.0.1:00080"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "[listener a]\nservice = echo\naddress = %s\n", good[i]);
        cio_config_free(parse_ok(buf));
    }
#undef ADDRESS
#undef UNIX
}
END_TEST

/* Two listeners on the same protocol and address: the second is the error. */
START_TEST(test_config_same_address_twice_is_an_error_on_the_second)
{
    static const error_case_t cases[] = {
        {LISTENER_HEAD "\n[listener b]\nservice = discard\naddress = 127.0.0.1:7007\n",
         "t:7: address: 127.0.0.1:7007 is already used by [listener a] at line 1\n"},
        {"[listener a]\nservice = echo\naddress = [::1]:80\n"
         "[listener b]\nservice = echo\naddress = [0:0::1]:80\n",
         "t:6: address: [0:0::1]:80 is already used by [listener a] at line 1\n"},
        {"[listener a]\nservice = echo\naddress = *:80\n"
         "[listener b]\nservice = echo\naddress = *:080\n",
         "t:6: address: *:080 is already used by [listener a] at line 1\n"},
        {"[listener a]\nservice = echo\nprotocol = unix\naddress = /s\n"
         "[listener b]\nservice = echo\nprotocol = unix\naddress = /s\n",
         "t:8: address: /s is already used by [listener a] at line 1\n"},
        /* Host names and zones compare in any case; IPv4 literals by value. */
        {"[listener a]\nservice = echo\naddress = My-Host.example:80\n"
         "[listener b]\nservice = echo\naddress = my-host.EXAMPLE:80\n",
         "t:6: address: my-host.EXAMPLE:80 is already used by [listener a] at line 1\n"},
        {"[listener a]\nservice = echo\naddress = [fe80::1%eth0]:80\n"
         "[listener b]\nservice = echo\naddress = [FE80::1%ETH0]:80\n",
         "t:6: address: [FE80::1%ETH0]:80 is already used by [listener a] at line 1\n"},
        /* A third listener on an address is blamed on the first, not on the second. */
        {"[listener a]\nservice = echo\naddress = 10.0.0.1:80\n"
         "[listener b]\nservice = echo\naddress = 10.0.0.1:80\n"
         "[listener c]\nservice = echo\naddress = 10.0.0.1:0080\n",
         "t:6: address: 10.0.0.1:80 is already used by [listener a] at line 1\n"
         "t:9: address: 10.0.0.1:0080 is already used by [listener a] at line 1\n"},
    };
    CHECK_CASES(cases);
    /* Other protocols, other hosts and port 0 (a new port each time) are no clash. */
    cio_config_t *c = parse_ok(LISTENER_HEAD "[listener b]\nservice = echo\nprotocol = udp\n"
                                             "address = 127.0.0.1:7007\n"
                                             "[listener c]\nservice = echo\naddress = *:7007\n"
                                             "[listener d]\nservice = echo\naddress = *:0\n"
                                             "[listener e]\nservice = echo\naddress = *:0\n");
    ck_assert_uint_eq(c->nlisteners, 5);
    cio_config_free(c);
    /* Neither does a host name against a literal, nor an IPv4 against an IPv6 address. */
    c = parse_ok("[listener a]\nservice = echo\naddress = localhost:80\n"
                 "[listener b]\nservice = echo\naddress = 127.0.0.1:80\n"
                 "[listener c]\nservice = echo\naddress = [::ffff:127.0.0.1]:80\n"
                 "[listener d]\nservice = echo\nprotocol = unix\naddress = /80\n");
    ck_assert_uint_eq(c->nlisteners, 4);
    cio_config_free(c);
}
END_TEST

/* Every error of a file is reported, in line order, whichever check found it. */
START_TEST(test_config_reports_all_errors_in_line_order)
{
    check_errors("workers = 1\n"            /* 1 */
                 "[global]\n"               /* 2 */
                 "workers = many\n"         /* 3 */
                 "placement = list\n"       /* 4: no cores, found at the end */
                 "bogus = 1\n"              /* 5 */
                 "[listener a]\n"           /* 6: no service */
                 "address = 127.0.0.1:1\n"  /* 7 */
                 "write_buffer_high = 1K\n" /* 8: below the low default */
                 "[nope]\n"                 /* 9 */
                 "ignored = in an unknown section\n"
                 "[listener b]\n"          /* 11 */
                 "service = echo\n"        /* 12 */
                 "address = 127.0.0.1:1\n" /* 13: taken by a */
                 "backlog = -3\n"          /* 14 */
                 "garbage\n",              /* 15 */
                 "t:1: key \"workers\" is outside any section\n"
                 "t:3: workers: \"many\" is not a number\n"
                 "t:4: placement = list needs a cores list\n"
                 "t:5: unknown key \"bogus\" in [global]\n"
                 "t:6: [listener a]: missing required key \"service\"\n"
                 "t:8: write_buffer_low (16K) must not exceed write_buffer_high (1K)\n"
                 "t:9: unknown section [nope]\n"
                 "t:13: address: 127.0.0.1:1 is already used by [listener a] at line 6\n"
                 "t:14: backlog: -3 is out of range (1..65535)\n"
                 "t:15: expected KEY = VALUE, [SECTION] or a comment\n");
}
END_TEST

/* ---- value edges ----------------------------------------------------------------- */

/* Sizes: bytes, K, M, G (1024-based) up to 1G; no fractions, signs, blanks or other units. */
START_TEST(test_config_size_edges)
{
    static const struct {
        const char *text;
        size_t value;
    } good[] = {{"0", 0},          {"1", 1},         {"1K", 1024},        {"1k", 1024},
                {"3M", 3u << 20},  {"1G", 1u << 30}, {"1024M", 1u << 30}, {"1073741824", 1u << 30},
                {"007K", 7 * 1024}};
    char buf[256], want[256];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        cio_config_t *c = parse_ok(high_with(buf, sizeof(buf), good[i].text));
        ck_assert_uint_eq(c->listeners[0].write_high, good[i].value);
        cio_config_free(c);
    }
    static const char *const range[] = {"1073741825",
                                        "1025M",
                                        "2G",
                                        "-1",
                                        "-1K",
                                        "18446744073709551616",
                                        "99999999999999999999999G"};
    for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++) {
        snprintf(want, sizeof(want), "t:4: write_buffer_high: %s is out of range (0..1G)\n",
                 range[i]);
        check_errors(high_with(buf, sizeof(buf), range[i]), want);
    }
    static const char *const bad[] = {"K",  "1.5K", "1KB", "1 K", "1T", "0x10",
                                      "+1", "1e3",  "- 1", "1K1", "--1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(want, sizeof(want),
                 "t:4: write_buffer_high: \"%s\" is not a size (bytes, or a number with K, M or "
                 "G)\n",
                 bad[i]);
        check_errors(high_with(buf, sizeof(buf), bad[i]), want);
    }
}
END_TEST

/* Durations: a decimal number of seconds, or with ms, s or m; at most 365 days. */
START_TEST(test_config_duration_edges)
{
    static const struct {
        const char *text;
        double value;
    } good[] = {{"0", 0},
                {"0s", 0},
                {"10", 10},
                {"10s", 10},
                {"0.5s", 0.5},
                {"0.5", 0.5},
                {"250ms", 0.25},
                {"1.5m", 90},
                {"0.5ms", 5e-4},
                {"525600m", 31536000},
                {"31536000", 31536000},
                {"007.250s", 7.25}};
    char buf[256], want[256];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        cio_config_t *c = parse_ok(listener_with(buf, sizeof(buf), "idle_timeout", good[i].text));
        ck_assert_double_eq_tol(c->listeners[0].idle_timeout, good[i].value, 1e-9);
        cio_config_free(c);
    }
    static const char *const range[] = {"525601m", "31536001",
                                        "-1",      "-0.5s",
                                        "-1ms",    "1000000000000000000000000000000000000000000m"};
    for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++) {
        snprintf(want, sizeof(want), "t:4: idle_timeout: %s is out of range (0s..365 days)\n",
                 range[i]);
        check_errors(listener_with(buf, sizeof(buf), "idle_timeout", range[i]), want);
    }
    static const char *const bad[] = {"s",   ".5",    "1.",   "1.s", "1e3", "inf",   "nan", "5h",
                                      "1 s", "10sec", "1,5s", "+1",  "0x1", "1.2.3", "--1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(want, sizeof(want),
                 "t:4: idle_timeout: \"%s\" is not a duration (a number with ms, s or m)\n",
                 bad[i]);
        check_errors(listener_with(buf, sizeof(buf), "idle_timeout", bad[i]), want);
    }
}
END_TEST

/* Numbers: digits only, with the key's range; booleans in every spelling. */
START_TEST(test_config_number_and_boolean_edges)
{
    char buf[256], want[256];
    cio_config_t *c = parse_ok("[global]\nworkers = 1024\nexecutor_threads = 0001\n");
    ck_assert_uint_eq(c->workers, 1024);
    ck_assert_uint_eq(c->executor_threads, 1);
    cio_config_free(c);
    static const char *const range[] = {"1025", "-1", "-0", "99999999999999999999999999"};
    for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++) {
        snprintf(buf, sizeof(buf), "[global]\nworkers = %s\n", range[i]);
        snprintf(want, sizeof(want), "t:2: workers: %s is out of range (0..1024)\n", range[i]);
        check_errors(buf, want);
    }
    static const char *const bad[] = {"+1", "0x10", "1.0", "1e2", "1 2", "one", "1k", "-"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(buf, sizeof(buf), "[global]\nworkers = %s\n", bad[i]);
        snprintf(want, sizeof(want), "t:2: workers: \"%s\" is not a number\n", bad[i]);
        check_errors(buf, want);
    }
    static const char *const yes[] = {"yes", "on", "true", "1", "YES", "On", "True"};
    static const char *const no[] = {"no", "off", "false", "0", "NO", "Off", "FALSE"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        snprintf(buf, sizeof(buf), "[global]\ndebug = %s\npin = %s\n", yes[i], no[i]);
        c = parse_ok(buf);
        ck_assert(c->debug);
        ck_assert(!c->pin);
        cio_config_free(c);
    }
}
END_TEST

/* ---- limits ---------------------------------------------------------------------- */

/* A line of CIO_CONFIG_LINE_MAX bytes is read whole, one more is an error. */
START_TEST(test_config_line_limit)
{
    char *text = malloc(4 * CIO_CONFIG_LINE_MAX);
    /* A comment line and a key line of exactly the limit. */
    int n = snprintf(text, 4 * CIO_CONFIG_LINE_MAX, "[global]\n;%*s\nplacement = list\n",
                     CIO_CONFIG_LINE_MAX - 1, "x");
    int head = snprintf(text + n, 64, "cores = 5");
    snprintf(text + n + head, 4 * CIO_CONFIG_LINE_MAX, "%*s\n", CIO_CONFIG_LINE_MAX - head, ",6");
    cio_config_t *c = parse_ok(text);
    ck_assert_uint_eq(c->ncores, 2);
    ck_assert_uint_eq(c->cores[1], 6);
    cio_config_free(c);

    /* One byte more, in a comment or a key line: reported, with every other error. */
    snprintf(text, 4 * CIO_CONFIG_LINE_MAX, "[global]\n;%*s\nworkers = x\ncores = %*s\n",
             CIO_CONFIG_LINE_MAX, "x", CIO_CONFIG_LINE_MAX, "1");
    check_errors(text, "t:2: line too long (1025 bytes, at most 1024)\n"
                       "t:3: workers: \"x\" is not a number\n"
                       "t:4: line too long (1032 bytes, at most 1024)\n");

    /* An overlong section header: its keys are not blamed on the section before. */
    snprintf(text, 4 * CIO_CONFIG_LINE_MAX, "[global]\n[listener %*s]\nservice = echo\n",
             CIO_CONFIG_LINE_MAX, "x");
    check_errors(text, "t:2: line too long (1035 bytes, at most 1024)\n");
    free(text);
}
END_TEST

/* Lines around and past inih's 200-byte buffer are read whole, never in pieces. */
START_TEST(test_config_lines_longer_than_inih_buffer_are_read_whole)
{
    char text[2 * CIO_CONFIG_LINE_MAX], want[256];
    for (int len = 150; len <= CIO_CONFIG_LINE_MAX; len += len < 260 ? 1 : 97) {
        /* "workers = 7", blanks, then an inline comment full of '=' that must stay a comment. */
        snprintf(text, sizeof(text), "[global]\nworkers = 7%*s\nlog_level = error\n", len - 11,
                 "; a=b=c");
        cio_config_t *c = parse_ok(text);
        ck_assert_uint_eq(c->workers, 7);
        ck_assert_int_eq(c->log_level, CIO_LOG_ERROR);
        cio_config_free(c);

        /* A value as long as the line: its whole length reaches the check. */
        int name_len = len - (int)strlen("service = ");
        snprintf(text, sizeof(text), "[listener a]\nservice = %0*d\naddress = *:1\n", name_len, 0);
        snprintf(want, sizeof(want), "t:2: service: name too long (%d bytes, at most 63)\n",
                 name_len);
        check_errors(text, want);
    }
    /* A key too long for inih's buffer is no key; a long line without '=' is no key line. */
    snprintf(text, sizeof(text), "[global]\n%0*d = 1\n%0*d\n", 300, 0, 300, 0);
    snprintf(want, sizeof(want),
             "t:2: expected KEY = VALUE, [SECTION] or a comment\n"
             "t:3: expected KEY = VALUE, [SECTION] or a comment\n");
    check_errors(text, want);
}
END_TEST

/* Listener and service names: 63 bytes are allowed, 64 are too long. */
START_TEST(test_config_name_limit)
{
    char text[512], name[CIO_CONFIG_NAME_MAX + 2];
    memset(name, 'n', sizeof(name) - 1);
    name[CIO_CONFIG_NAME_MAX] = '\0';
    snprintf(text, sizeof(text), "[listener %s]\nservice = %s\naddress = *:1\n", name, name);
    cio_config_t *c = parse_ok(text);
    ck_assert_uint_eq(strlen(c->listeners[0].name), CIO_CONFIG_NAME_MAX);
    ck_assert_ptr_eq(cio_config_find_listener(c, name), &c->listeners[0]);
    ck_assert_str_eq(c->listeners[0].service, name);
    cio_config_free(c);

    name[CIO_CONFIG_NAME_MAX] = 'n';
    name[CIO_CONFIG_NAME_MAX + 1] = '\0';
    snprintf(text, sizeof(text), "[listener %s]\nservice = echo\naddress = *:1\nbacklog = 0\n",
             name);
    check_errors(text, "t:1: listener name too long (64 bytes, at most 63)\n"
                       "t:4: backlog: 0 is out of range (1..65535)\n");
    snprintf(text, sizeof(text), "[listener a]\nservice = %s\naddress = *:1\n", name);
    check_errors(text, "t:2: service: name too long (64 bytes, at most 63)\n");
}
END_TEST

/* Errors are all found but only the first CIO_CONFIG_ERRORS_MAX in line order listed. */
START_TEST(test_config_errors_past_the_limit_are_counted_not_listed)
{
    char text[4096], want[4096];
    size_t t = 0, w = 0;
    _Static_assert(CIO_CONFIG_ERRORS_MAX == 20, "the cases below count 20 errors");
    /* Exactly the limit: every error, no count. */
    for (int i = 1; i <= 20; i++) {
        t += (size_t)snprintf(text + t, sizeof(text) - t, "x\n");
        w += (size_t)snprintf(want + w, sizeof(want) - w,
                              "t:%d: expected KEY = VALUE, [SECTION] or a comment\n", i);
    }
    check_errors(text, want);
    /* One more: counted in the singular. */
    snprintf(text + t, sizeof(text) - t, "x\n");
    snprintf(want + w, sizeof(want) - w, "t: 1 more error (only the first 20 are listed)\n");
    check_errors(text, want);

    /* Errors found last (missing keys, at the header) come first, and push out the later lines. */
    t = (size_t)snprintf(text, sizeof(text), "[listener a]\n");
    w = (size_t)snprintf(want, sizeof(want),
                         "t:1: [listener a]: missing required key \"service\"\n"
                         "t:1: [listener a]: missing required key \"address\"\n");
    for (int i = 2; i <= 31; i++) {
        t += (size_t)snprintf(text + t, sizeof(text) - t, "x\n");
        if (i <= 19)
            w += (size_t)snprintf(want + w, sizeof(want) - w,
                                  "t:%d: expected KEY = VALUE, [SECTION] or a comment\n", i);
    }
    snprintf(want + w, sizeof(want) - w, "t: 12 more errors (only the first 20 are listed)\n");
    check_errors(text, want);
}
END_TEST

/* The peak resident size of this process in KiB (VmHWM), or -1. */
static long peak_rss_kib(void)
{
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* Start the peak resident size afresh where the kernel allows it (Linux 4.0 on). */
static void reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

/* Two million bad lines: twenty listed, the rest counted, and memory does not grow with them. */
START_TEST(test_config_error_flood_is_bounded_in_text_and_memory)
{
    const size_t lines = 2000000;
    char *text = malloc(2 * lines + 1), want[4096];
    size_t w = 0;
    for (size_t i = 0; i < lines; i++)
        memcpy(text + 2 * i, "x\n", 2);
    text[2 * lines] = '\0';
    for (int i = 1; i <= CIO_CONFIG_ERRORS_MAX; i++)
        w += (size_t)snprintf(want + w, sizeof(want) - w,
                              "t:%d: expected KEY = VALUE, [SECTION] or a comment\n", i);
    snprintf(want + w, sizeof(want) - w, "t: %zu more errors (only the first %d are listed)\n",
             lines - CIO_CONFIG_ERRORS_MAX, CIO_CONFIG_ERRORS_MAX);
    reset_peak_rss();
    long before = peak_rss_kib();
    char *errors = NULL;
    ck_assert_ptr_null(cio_config_parse(text, "t", &errors));
    long after = peak_rss_kib();
    ck_assert_ptr_nonnull(errors);
    /* Kept, the messages alone would take over 100 MiB; the text parsed is 4 MB. */
    ck_assert_int_ge(before, 0);
    ck_assert_msg(after - before < 16 * 1024, "peak resident size grew by %ld KiB", after - before);
    ck_assert_msg(strcmp(errors, want) == 0, "got %zu bytes:\n%.3000s", strlen(errors), errors);
    free(errors);
    free(text);
}
END_TEST

/* A huge line inside a file of allowed size is reported on its line, and reading goes on. */
START_TEST(test_config_huge_line_is_reported_on_its_line)
{
    const size_t digits = 10u << 20;
    char path[] = "/tmp/cio-test-config-XXXXXX", want[512];
    char *text = malloc(digits + 64);
    size_t n = (size_t)snprintf(text, 64, "[global]\nworkers = ");
    memset(text + n, '1', digits);
    n += digits;
    n += (size_t)snprintf(text + n, 64, "\npin = x\n");
    write_temp(path, text, n);
    char *errors = NULL;
    ck_assert_ptr_null(cio_config_load(path, &errors));
    snprintf(want, sizeof(want),
             "%s:2: line too long (%zu bytes, at most 1024)\n"
             "%s:3: pin: \"x\" is not a boolean (yes/no, on/off, true/false, 1/0)\n",
             path, digits + strlen("workers = "), path);
    ck_assert_str_eq(errors, want);
    free(errors);
    unlink(path);
    free(text);
}
END_TEST

/* CIO_CONFIG_FILE_MAX bytes are read; one more is an error that names the limit. */
START_TEST(test_config_file_size_limit)
{
    char path[] = "/tmp/cio-test-config-XXXXXX", want[512];
    char *errors = NULL;
    /* "[global]" then NUL bytes, as a sparse file: line 2 runs to the end. */
    write_temp(path, "[global]\n", 9);
    ck_assert_int_eq(truncate(path, CIO_CONFIG_FILE_MAX), 0);
    ck_assert_ptr_null(cio_config_load(path, &errors));
    snprintf(want, sizeof(want), "%s:2: line too long (%u bytes, at most 1024)\n", path,
             CIO_CONFIG_FILE_MAX - 9);
    ck_assert_str_eq(errors, want);
    free(errors);

    ck_assert_int_eq(truncate(path, CIO_CONFIG_FILE_MAX + 1), 0);
    ck_assert_ptr_null(cio_config_load(path, &errors));
    snprintf(want, sizeof(want), "%s: file is larger than %u MiB\n", path,
             CIO_CONFIG_FILE_MAX >> 20);
    ck_assert_str_eq(errors, want);
    ck_assert_str_eq(want + strlen(path), ": file is larger than 16 MiB\n");
    free(errors);
    unlink(path);

    /* A device without end stops at the limit too. */
    ck_assert_ptr_null(cio_config_load("/dev/zero", &errors));
    ck_assert_str_eq(errors, "/dev/zero: file is larger than 16 MiB\n");
    free(errors);
}
END_TEST

#define MANY_LISTENERS 100000u

/* Listener @p i of many_listeners(): IPv4, IPv6 and host names by turns, all different. */
static void many_address(char *buf, size_t size, unsigned i)
{
    if (i % 3 == 0)
        snprintf(buf, size, "10.%u.%u.%u:7", i >> 16, (i >> 8) & 255, i & 255);
    else if (i % 3 == 1)
        snprintf(buf, size, "[fd00::%x:%x]:7", i >> 16, i & 0xffff);
    else
        snprintf(buf, size, "host-%u.example:7", i);
}

/* A file of MANY_LISTENERS listeners, l<i> at line 4i+1, then @p tail; its name in @p path. */
static void write_many_listeners(char *path, const char *tail)
{
    char *text = NULL, address[64];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    for (unsigned i = 0; i < MANY_LISTENERS; i++) {
        many_address(address, sizeof(address), i);
        fprintf(f, "[listener l%u]\nservice = echo\naddress = %s\n\n", i, address);
    }
    fputs(tail, f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_uint_gt(len, 4u << 20); /* past the former 4 MiB limit */
    write_temp(path, text, len);
    free(text);
}

/* 100,000 listeners load in file order; duplicates after them are still found, on their line. */
START_TEST(test_config_many_listeners_load_and_duplicates_are_found)
{
    char path[] = "/tmp/cio-test-config-XXXXXX", address[64], name[32], want[1024];
    char *errors = NULL;
    write_many_listeners(path, "");
    cio_config_t *c = cio_config_load(path, &errors);
    ck_assert_msg(c != NULL, "%.1000s", errors ? errors : "(no errors)");
    ck_assert_uint_eq(c->nlisteners, MANY_LISTENERS);
    for (unsigned i = 0; i < MANY_LISTENERS; i++) {
        snprintf(name, sizeof(name), "l%u", i);
        ck_assert_str_eq(c->listeners[i].name, name);
        ck_assert_uint_eq(c->listeners[i].line, 4 * i + 1);
    }
    many_address(address, sizeof(address), MANY_LISTENERS - 1);
    ck_assert_str_eq(address, "10.1.134.159:7");
    ck_assert_str_eq(c->listeners[MANY_LISTENERS - 1].host, "10.1.134.159");
    ck_assert_ptr_eq(cio_config_find_listener(c, "l99999"), &c->listeners[MANY_LISTENERS - 1]);
    cio_config_free(c);
    unlink(path);
    strcpy(path, "/tmp/cio-test-config-XXXXXX");

    /* l99997 is [fd00::1:869d]:7, l99998 host-99998.example:7; the tail starts at line 400001. */
    write_many_listeners(path, "[listener l0]\nservice = echo\naddress = *:1\n"
                               "[listener v6]\nservice = echo\naddress = [FD00:0:0::1:869D]:007\n"
                               "[listener name]\nservice = echo\naddress = HOST-99998.Example:7\n"
                               "[listener l99999]\n");
    ck_assert_ptr_null(cio_config_load(path, &errors));
    snprintf(want, sizeof(want),
             "%s:400001: duplicate section [listener l0] (first at line 1)\n"
             "%s:400006: address: [FD00:0:0::1:869D]:007 is already used by [listener l99997] at "
             "line 399989\n"
             "%s:400009: address: HOST-99998.Example:7 is already used by [listener l99998] at "
             "line 399993\n"
             "%s:400010: duplicate section [listener l99999] (first at line 399997)\n",
             path, path, path, path);
    ck_assert_str_eq(errors, want);
    free(errors);
    unlink(path);
}
END_TEST

/* ---- files ------------------------------------------------------------------------ */

/* An unreadable file is one error naming the file; errors may be NULL. */
START_TEST(test_config_unreadable_file)
{
    char *errors = NULL;
    ck_assert_ptr_null(cio_config_load("/nonexistent/coreio.ini", &errors));
    ck_assert_str_eq(errors, "/nonexistent/coreio.ini: No such file or directory\n");
    free(errors);
    ck_assert_ptr_null(cio_config_load("/", &errors));
    ck_assert_str_eq(errors, "/: Is a directory\n");
    free(errors);
    ck_assert_ptr_null(cio_config_load("/nonexistent/coreio.ini", NULL));
    ck_assert_ptr_null(cio_config_parse("[nope]\n", "t", NULL));
}
END_TEST

/* A file is read whole; a NUL byte is an error on its line, not the end of the file. */
START_TEST(test_config_file_with_nul_byte)
{
    char path[] = "/tmp/cio-test-config-XXXXXX";
    static const char text[] = "[global]\nworkers = 1\0\npin = x\n";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, sizeof(text) - 1), sizeof(text) - 1);
    close(fd);
    char *errors = NULL, want[256];
    ck_assert_ptr_null(cio_config_load(path, &errors));
    snprintf(want, sizeof(want),
             "%s:2: NUL byte in the line\n"
             "%s:3: pin: \"x\" is not a boolean (yes/no, on/off, true/false, 1/0)\n",
             path, path);
    ck_assert_str_eq(errors, want);
    free(errors);
    unlink(path);
}
END_TEST

/* ---- helpers -------------------------------------------------------------------- */

/* Listeners keep their sockets across a reload when protocol, address, balance, backlog agree. */
START_TEST(test_config_listener_same_socket)
{
    cio_config_t *c = parse_ok("[listener a]\nservice = echo\naddress = [::1]:80\n"
                               "[listener c]\nservice = echo\naddress = [::1]:81\n"
                               "[listener d]\nservice = echo\naddress = *:80\nbacklog = 10\n"
                               "[listener e]\nservice = echo\naddress = *:80\nprotocol = udp\n"
                               "[listener f]\nservice = echo\nprotocol = unix\naddress = /s\n"
                               "[listener g]\nservice = echo\nprotocol = unix\naddress = /t\n");
    cio_config_t *d = parse_ok("[listener d]\nservice = echo\naddress = *:80\nbacklog = 10\n"
                               "[listener f]\nservice = http-hello\nprotocol = unix\n"
                               "address = /s\n"
                               "[listener b]\nservice = discard\naddress = [0::1]:80\n"
                               "idle_timeout = 1s\nwrite_buffer_high = 1M\n");
    cio_config_t *e = parse_ok("[listener h]\nservice = echo\naddress = [::1]:80\n"
                               "balance = handoff\n");
    const cio_config_listener_t *a = &c->listeners[0], *b = cio_config_find_listener(d, "b");
    /* Service, timeouts and buffers do not matter; the host compares as an address. */
    ck_assert(cio_config_listener_same_socket(a, b));
    ck_assert(cio_config_listener_same_socket(a, a));
    ck_assert(!cio_config_listener_same_socket(a, cio_config_find_listener(c, "c")));
    ck_assert(!cio_config_listener_same_socket(a, &e->listeners[0]));
    const cio_config_listener_t *cd = cio_config_find_listener(c, "d");
    ck_assert(cio_config_listener_same_socket(cd, cio_config_find_listener(d, "d")));
    ck_assert(!cio_config_listener_same_socket(cd, cio_config_find_listener(c, "e")));
    ck_assert(!cio_config_listener_same_socket(cd, a));
    const cio_config_listener_t *f = cio_config_find_listener(c, "f");
    ck_assert(cio_config_listener_same_socket(f, cio_config_find_listener(d, "f")));
    ck_assert(!cio_config_listener_same_socket(f, cio_config_find_listener(c, "g")));
    ck_assert(!cio_config_listener_same_socket(a, NULL));
    ck_assert(!cio_config_listener_same_socket(NULL, NULL));
    cio_config_free(c);
    cio_config_free(d);
    cio_config_free(e);
}
END_TEST

/* The PROXY keys keep the sockets, and compare on their own: versions, then ranges in order. */
START_TEST(test_config_listener_same_proxy)
{
#define PROXIED(name, port, versions, ranges)                                                      \
    "[listener " name "]\nservice = echo\naddress = *:" port "\nproxy_protocol = " versions        \
    "\nproxy_trusted = " ranges "\n"
    cio_config_t *c = parse_ok(PROXIED("a", "80", "v2", "10.0.0.0/8, ::1") "[listener b]\n"
                                                                           "service = echo\n"
                                                                           "address = *:81\n");
    cio_config_t *d = parse_ok(
        PROXIED("a", "80", "v2", "10.0.0.0/8 ::1") PROXIED("b", "81", "v1", "10.0.0.0/8 ::1")
            PROXIED("c", "82", "v2", "::1 10.0.0.0/8") PROXIED("e", "83", "v2", "10.0.0.0/16 ::1")
                PROXIED("f", "84", "v2", "10.0.0.0/8"));
#undef PROXIED
    const cio_config_listener_t *a = &c->listeners[0], *plain = &c->listeners[1];
    /* A listener that starts or stops reading headers keeps its sockets. */
    ck_assert(cio_config_listener_same_socket(plain, cio_config_find_listener(d, "b")));
    ck_assert(cio_config_listener_same_socket(a, cio_config_find_listener(d, "a")));
    ck_assert(!cio_config_listener_same_proxy(a, plain));
    ck_assert(cio_config_listener_same_proxy(a, a));
    ck_assert(cio_config_listener_same_proxy(plain, plain));
    ck_assert(cio_config_listener_same_proxy(a, cio_config_find_listener(d, "a")));
    ck_assert(!cio_config_listener_same_proxy(a, cio_config_find_listener(d, "b")));
    ck_assert(!cio_config_listener_same_proxy(a, cio_config_find_listener(d, "c")));
    ck_assert(!cio_config_listener_same_proxy(a, cio_config_find_listener(d, "e")));
    ck_assert(!cio_config_listener_same_proxy(a, cio_config_find_listener(d, "f")));
    ck_assert(!cio_config_listener_same_proxy(a, NULL));
    ck_assert(cio_config_listener_same_proxy(NULL, NULL));
    cio_config_free(c);
    cio_config_free(d);
}
END_TEST

/* find_listener finds by exact name; free takes NULL. */
START_TEST(test_config_find_listener_and_free)
{
    cio_config_t *c = parse_ok(cio_config_default_text());
    ck_assert_ptr_eq(cio_config_find_listener(c, "http"), &c->listeners[2]);
    ck_assert_ptr_null(cio_config_find_listener(c, "HTTP"));
    ck_assert_ptr_null(cio_config_find_listener(c, "htt"));
    ck_assert_ptr_null(cio_config_find_listener(c, NULL));
    ck_assert_ptr_null(cio_config_find_listener(NULL, "http"));
    cio_config_free(c);
    cio_config_free(NULL);
}
END_TEST

/* ---- [service NAME], [module NAME], typed keys and checkers ------------------------------- */

START_TEST(test_config_service_and_module_sections_are_kept_as_written)
{
    cio_config_t *c = parse_ok("[service kv]\nmax_keys = 10\n; a comment\nname = a b c\n\n"
                               "[module kv]\npath = lib/kv.so\n\n[service other]\n");
    ck_assert_uint_eq(c->nservices, 2);
    ck_assert_str_eq(c->services[0].name, "kv");
    ck_assert_uint_eq(c->services[0].line, 1);
    ck_assert_uint_eq(c->services[0].nentries, 2);
    ck_assert_str_eq(c->services[0].entries[1].key, "name");
    ck_assert_str_eq(c->services[0].entries[1].value, "a b c");
    ck_assert_uint_eq(c->services[0].entries[1].line, 4);
    ck_assert_uint_eq(c->services[1].nentries, 0);
    ck_assert_uint_eq(c->nmodules, 1);
    ck_assert_str_eq(c->modules[0].path, "lib/kv.so");
    ck_assert_uint_eq(c->modules[0].path_line, 7);
    ck_assert_ptr_eq(cio_config_find_service(c, "other"), &c->services[1]);
    ck_assert_ptr_null(cio_config_find_service(c, "nope"));
    cio_config_free(c);
}
END_TEST

START_TEST(test_config_service_and_module_section_errors_name_their_line)
{
    static const error_case_t cases[] = {
        {"[service kv]\na = 1\na = 2\n", "t:3: duplicate key \"a\" (first set at line 2)\n"},
        {"[service kv]\n[service kv]\nx = 1\n",
         "t:2: duplicate section [service kv] (first at line 1)\n"},
        {"[service]\n", "t:1: [service]: expected [service NAME], the NAME made of letters, "
                        "digits, '_', '.' and '-'\n"},
        {"[module m]\n", "t:1: [module m]: missing required key \"path\"\n"},
        {"[module m]\npath = a\nfile = b\n", "t:3: unknown key \"file\" in [module m]\n"},
        {"[module m]\npath = a\n[module m]\npath = b\n",
         "t:3: duplicate section [module m] (first at line 1)\n"},
        {"[global]\nlog_format = xml\n", "t:2: log_format: \"xml\" is not one of text, json\n"},
    };
    CHECK_CASES(cases);
    cio_config_t *c = parse_ok("[global]\nlog_format = JSON\n");
    ck_assert_int_eq(c->log_format, CIO_LOG_JSON);
    cio_config_free(c);
}
END_TEST

/* Parse @p text as @p key says: the return code, and the message in @p why. */
static int value_of(const cio_config_key_t *key, const char *text, cio_config_value_t *v, char *why)
{
    why[0] = '\0';
    return cio_config_value_parse(key, text, v, why, 160);
}

START_TEST(test_config_typed_values_and_their_ranges)
{
    char why[160];
    cio_config_value_t v;
    cio_config_key_t k = {.name = "n", .type = CIO_CONFIG_INTEGER, .min = -5, .max = 10};
    ck_assert_int_eq(value_of(&k, "-5", &v, why), 0);
    ck_assert_int_eq(v.u.integer, -5);
    ck_assert_int_eq(value_of(&k, "11", &v, why), -ERANGE);
    ck_assert_str_eq(why, "11 is out of range (-5..10)");
    ck_assert_int_eq(value_of(&k, "1x", &v, why), -EINVAL);
    ck_assert_str_eq(why, "\"1x\" is not an integer");
    ck_assert_int_eq(value_of(&k, "--1", &v, why), -EINVAL);
    k.min = k.max = 0; /* no range: any int64 */
    ck_assert_int_eq(value_of(&k, "-9223372036854775808", &v, why), 0);
    ck_assert(v.u.integer == INT64_MIN);
    ck_assert_int_eq(value_of(&k, "9223372036854775808", &v, why), -ERANGE);
    k = (cio_config_key_t){.name = "s", .type = CIO_CONFIG_SIZE, .min = 1, .max = 1 << 20};
    ck_assert_int_eq(value_of(&k, "1M", &v, why), 0);
    ck_assert_uint_eq(v.u.size, 1 << 20);
    ck_assert_int_eq(value_of(&k, "2M", &v, why), -ERANGE);
    ck_assert_int_eq(value_of(&k, "0", &v, why), -ERANGE);
    k = (cio_config_key_t){.name = "d", .type = CIO_CONFIG_DURATION};
    ck_assert_int_eq(value_of(&k, "250ms", &v, why), 0);
    ck_assert(v.u.duration == 0.25);
    ck_assert_int_eq(value_of(&k, "soon", &v, why), -EINVAL);
    ck_assert_str_eq(why, "\"soon\" is not a duration (a number with ms, s or m)");
    k = (cio_config_key_t){.name = "b", .type = CIO_CONFIG_BOOLEAN};
    ck_assert_int_eq(value_of(&k, "Off", &v, why), 0);
    ck_assert(!v.u.boolean);
    k = (cio_config_key_t){.name = "a", .type = CIO_CONFIG_ADDRESS};
    ck_assert_int_eq(value_of(&k, "[::1]:80", &v, why), 0);
    ck_assert_str_eq(v.u.address.host, "::1");
    ck_assert_str_eq(v.u.address.port, "80");
    cio_config_value_clear(&v);
    ck_assert_int_eq(value_of(&k, "nowhere", &v, why), -EINVAL);
    ck_assert_str_eq(why, "expected HOST:PORT");
    k = (cio_config_key_t){.name = "p", .type = CIO_CONFIG_PATH};
    ck_assert_int_eq(value_of(&k, "relative/x", &v, why), -EINVAL);
    ck_assert_str_eq(why, "\"relative/x\" is not an absolute path");
    ck_assert_int_eq(value_of(&k, "/var/x", &v, why), 0);
    ck_assert_str_eq(v.u.string, "/var/x");
    cio_config_value_clear(&v);
    k = (cio_config_key_t){.name = "t", .type = CIO_CONFIG_STRING};
    ck_assert_int_eq(value_of(&k, "any text", &v, why), 0);
    ck_assert_str_eq(v.u.string, "any text");
    cio_config_value_clear(&v);
    ck_assert_str_eq(cio_config_type_name(CIO_CONFIG_SIZE), "size");
    ck_assert_int_eq(cio_config_value_parse(NULL, "1", &v, NULL, 0), -EINVAL);
}
END_TEST

/* A checker that blames every [service] section's first key and line 1. */
static void blame(const cio_config_t *c, cio_config_check_t *chk, void *arg)
{
    ++*(int *)arg;
    for (size_t i = 0; i < c->nservices; i++)
        if (c->services[i].nentries)
            cio_config_check_error(chk, c->services[i].entries[0].line, "%s is wrong",
                                   c->services[i].entries[0].key);
    cio_config_check_error(chk, 1, "first");
}

START_TEST(test_config_checker_errors_join_the_file_errors_in_line_order)
{
    int calls = 0;
    char *errors = NULL;
    const char *text = "[global]\nbogus = 1\n[service s]\nk = v\n";
    ck_assert_ptr_null(cio_config_parse_checked(text, "t", blame, &calls, &errors));
    ck_assert_int_eq(calls, 1);
    ck_assert_str_eq(errors, "t:1: first\nt:2: unknown key \"bogus\" in [global]\n"
                             "t:4: k is wrong\n");
    free(errors);
    cio_config_t *c = parse_ok("[service s]\nk = v\n");
    ck_assert_int_eq(cio_config_check(c, blame, &calls, &errors), -EINVAL);
    ck_assert_str_eq(errors, "t:1: first\nt:2: k is wrong\n");
    free(errors);
    cio_config_free(c);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("config");

    TCase *tc = cio_test_case("defaults");
    CIO_TEST(tc, test_config_default_text_parses_with_documented_values);
    CIO_TEST(tc, test_config_empty_text_has_every_global_default);
    CIO_TEST(tc, test_config_listener_keys_have_documented_defaults);
    CIO_TEST(tc, test_config_balance_default_depends_on_protocol);
    suite_add_tcase(s, tc);

    tc = cio_test_case("keys");
    CIO_TEST(tc, test_config_every_global_key_is_read);
    CIO_TEST(tc, test_config_every_listener_key_is_read);
    CIO_TEST(tc, test_config_every_tls_key_is_read);
    CIO_TEST(tc, test_config_tls_relative_paths_follow_the_file);
    CIO_TEST(tc, test_config_syntax_variants_are_read);
    CIO_TEST(tc, test_config_good_file_loads);
    CIO_TEST(tc, test_config_proxy_keys_are_read);
    CIO_TEST(tc, test_config_file_behind_a_balancer_loads);
    suite_add_tcase(s, tc);

    tc = cio_test_case("errors");
    CIO_TEST(tc, test_config_bad_files_fail_at_expected_line);
    CIO_TEST(tc, test_config_section_errors_name_their_line);
    CIO_TEST(tc, test_config_key_errors_name_their_line);
    CIO_TEST(tc, test_config_global_value_errors);
    CIO_TEST(tc, test_config_listener_value_errors);
    CIO_TEST(tc, test_config_tls_errors_name_their_line);
    CIO_TEST(tc, test_config_proxy_errors_name_their_line);
    CIO_TEST(tc, test_config_address_errors);
    CIO_TEST(tc, test_config_same_address_twice_is_an_error_on_the_second);
    CIO_TEST(tc, test_config_reports_all_errors_in_line_order);
    suite_add_tcase(s, tc);

    tc = cio_test_case("values");
    CIO_TEST(tc, test_config_size_edges);
    CIO_TEST(tc, test_config_duration_edges);
    CIO_TEST(tc, test_config_number_and_boolean_edges);
    suite_add_tcase(s, tc);

    tc = cio_test_case("limits");
    CIO_TEST(tc, test_config_line_limit);
    CIO_TEST(tc, test_config_lines_longer_than_inih_buffer_are_read_whole);
    CIO_TEST(tc, test_config_name_limit);
    CIO_TEST(tc, test_config_errors_past_the_limit_are_counted_not_listed);
    CIO_TEST(tc, test_config_error_flood_is_bounded_in_text_and_memory);
    CIO_TEST(tc, test_config_huge_line_is_reported_on_its_line);
    CIO_TEST(tc, test_config_file_size_limit);
    suite_add_tcase(s, tc);

    tc = cio_test_case("scale");
    CIO_TEST(tc, test_config_many_listeners_load_and_duplicates_are_found);
    suite_add_tcase(s, tc);

    tc = cio_test_case("files");
    CIO_TEST(tc, test_config_unreadable_file);
    CIO_TEST(tc, test_config_file_with_nul_byte);
    suite_add_tcase(s, tc);

    tc = cio_test_case("services");
    CIO_TEST(tc, test_config_service_and_module_sections_are_kept_as_written);
    CIO_TEST(tc, test_config_service_and_module_section_errors_name_their_line);
    CIO_TEST(tc, test_config_typed_values_and_their_ranges);
    CIO_TEST(tc, test_config_checker_errors_join_the_file_errors_in_line_order);
    suite_add_tcase(s, tc);

    tc = cio_test_case("helpers");
    CIO_TEST(tc, test_config_listener_same_socket);
    CIO_TEST(tc, test_config_listener_same_proxy);
    CIO_TEST(tc, test_config_find_listener_and_free);
    suite_add_tcase(s, tc);
    return s;
}

CIO_TEST_MAIN(make_suite)
