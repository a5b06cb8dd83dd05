/*
 * tools/coreiod.c: the coreio daemon. It reads a configuration (-c FILE, or
 * the one embedded in the library), checks it whole, and runs it as a
 * cio_app_t until SIGTERM or SIGINT; SIGHUP reloads the file; SIGUSR2 starts
 * this program again, with the same arguments, to take over every listening
 * socket without losing a connection (a binary upgrade). See coreiod(8).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coreio.h"
#include "coreio/app.h"
#include "coreio/service.h"

#include "config.h" /* PACKAGE_VERSION */

enum {
    OPT_PRINT_DEFAULT = 256,
    OPT_LIST_SERVICES,
    OPT_WORKERS,
    OPT_LOG_LEVEL,
    OPT_PID_FILE,
    OPT_HELP,
    OPT_VERSION
};

static const char usage_text[] =
    "usage: coreiod [-c FILE] [-t] [--print-default-config] [--workers N] [--log-level LEVEL]\n"
    "               [--pid-file FILE]\n"
    "       coreiod [-c FILE] --list-services\n"
    "       coreiod --help | --version\n"
    "\n"
    "  -c FILE                 run the configuration in FILE (default: the embedded one)\n"
    "  -t                      check the configuration and exit: 0 valid, 1 with the errors\n"
    "  --print-default-config  print the embedded configuration and exit\n"
    "  --list-services         print the services (built in, and from FILE's modules) with\n"
    "                          their keys and defaults, and exit\n"
    "  --workers N             run N workers (0: one per core), overriding the file\n"
    "  --log-level LEVEL       debug, info, warning or error, overriding the file\n"
    "  --pid-file FILE         write the process id to FILE once serving\n"
    "\n"
    "SIGTERM and SIGINT stop gracefully; SIGHUP reloads the file; SIGUSR2 hands every\n"
    "listening socket to a new coreiod (a zero-loss restart). See coreiod(8).\n";

typedef struct args {
    const char *file;
    bool test, print_default, list_services;
    cio_app_opts_t app;
} args_t;

static int usage_error(const char *fmt, const char *what)
{
    fprintf(stderr, "coreiod: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\n%s", usage_text);
    return 2;
}

static bool parse_level(const char *s, cio_log_level_t *level)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *level = (cio_log_level_t)i;
            return true;
        }
    return false;
}

/* 0 to go on, else the exit status (2 for bad usage, 0 after --help). */
static int parse_args(int argc, char **argv, args_t *a)
{
    static const struct option longopts[] = {
        {"print-default-config", no_argument, NULL, OPT_PRINT_DEFAULT},
        {"list-services", no_argument, NULL, OPT_LIST_SERVICES},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"pid-file", required_argument, NULL, OPT_PID_FILE},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:t", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a->file = optarg;
            break;
        case 't':
            a->test = true;
            break;
        case OPT_PRINT_DEFAULT:
            a->print_default = true;
            break;
        case OPT_LIST_SERVICES:
            a->list_services = true;
            break;
        case OPT_WORKERS: {
            char *end;
            errno = 0;
            unsigned long n = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || n > 1024)
                return usage_error("--workers: \"%s\" is not a number from 0 to 1024", optarg);
            a->app.set_workers = true;
            a->app.workers = n;
            break;
        }
        case OPT_LOG_LEVEL:
            if (!parse_level(optarg, &a->app.log_level))
                return usage_error("--log-level: \"%s\" is not debug, info, warning or error",
                                   optarg);
            a->app.set_log_level = true;
            break;
        case OPT_PID_FILE:
            a->app.pid_file = optarg;
            break;
        case OPT_HELP:
            fputs(usage_text, stdout);
            return -1;
        case OPT_VERSION:
            printf("coreiod (coreio) %s\n", PACKAGE_VERSION);
            return -1;
        case ':':
            return usage_error("%s needs an argument", argv[optind - 1]);
        default:
            return usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument %s", argv[optind]);
    return 0;
}

/* One service, as --list-services prints it. */
static void print_service(const cio_service_t *svc)
{
    printf("%s (%s%s%s)%s%s\n", svc->name, svc->kinds & CIO_SERVICE_STREAM ? "tcp, unix" : "",
           svc->kinds == (CIO_SERVICE_STREAM | CIO_SERVICE_DGRAM) ? ", " : "",
           svc->kinds & CIO_SERVICE_DGRAM ? "udp" : "", svc->doc ? ": " : "",
           svc->doc ? svc->doc : "");
    for (size_t k = 0; k < svc->nkeys; k++) {
        const cio_config_key_t *key = &svc->keys[k];
        printf("    %s = %s", key->name, cio_config_type_name(key->type));
        if (key->default_value)
            printf(" (default %s)", key->default_value[0] ? key->default_value : "\"\"");
        else
            printf(" (required)");
        if (key->min < key->max)
            printf(" [%g..%g]", key->min, key->max);
        printf("%s%s\n", key->doc ? ": " : "", key->doc ? key->doc : "");
    }
}

/* --list-services: after loading the modules of the file, if one was given. */
static int list_services(const args_t *a)
{
    char *errors = NULL;
    cio_config_t *cfg =
        a->file ? cio_config_load_checked(a->file, cio_app_check, NULL, &errors) : NULL;
    if (a->file && !cfg) {
        fputs(errors ? errors : "coreiod: out of memory\n", stderr);
        free(errors);
        return 1;
    }
    cio_config_free(cfg);
    const cio_service_t *svcs[256];
    size_t n = cio_service_list(svcs, 256);
    for (size_t i = 0; i < n && i < 256; i++)
        print_service(svcs[i]);
    return 0;
}

/*
 * What SIGUSR2 runs: this program's file, as the kernel names it now (a
 * binary replaced on disk since is the one that starts), with our arguments.
 * NULL when it cannot be named; SIGUSR2 is then refused with a log line.
 */
static const char *const *upgrade_argv(int argc, char **argv)
{
    static char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char **v = n > 0 ? calloc((size_t)argc + 1, sizeof(*v)) : NULL;
    if (!v)
        return NULL;
    exe[n] = '\0';
    v[0] = exe;
    for (int i = 1; i < argc; i++)
        v[i] = argv[i];
    return (const char *const *)v;
}

int main(int argc, char **argv)
{
    args_t a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (a.print_default) {
        fputs(cio_config_default_text(), stdout);
        return 0;
    }
    if (a.test || a.list_services) /* their output is the answer: no progress lines */
        cio_log_set_level(CIO_LOG_WARNING);
    if (a.list_services)
        return list_services(&a);
    signal(SIGPIPE, SIG_IGN);
    char *errors = NULL;
    cio_config_t *cfg = a.file ? cio_config_load_checked(a.file, cio_app_check, NULL, &errors)
                               : cio_config_parse_checked(cio_config_default_text(), "<default>",
                                                          cio_app_check, NULL, &errors);
    a.app.name = "coreiod";
    a.app.config_path = a.file;
    a.app.upgrade_argv = a.test ? NULL : upgrade_argv(argc, argv);
    cio_app_t *app = cfg ? cio_app_new(cfg, &a.app, &errors) : NULL;
    if (!app) {
        fputs(errors ? errors : "coreiod: out of memory\n", stderr);
        free(errors);
        free((void *)a.app.upgrade_argv);
        return 1;
    }
    if (a.test) {
        fprintf(stderr, "coreiod: %s: the configuration is valid\n", a.file ? a.file : "<default>");
        cio_app_free(app);
        return 0;
    }
    rc = cio_app_run(app);
    cio_app_free(app);
    free((void *)a.app.upgrade_argv);
    return rc == 0 ? 0 : 1;
}
