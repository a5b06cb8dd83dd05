/*
 * fuzz/fuzz_ini.c: the ini loader (config/) on any text. The input goes to
 * cio_config_parse() as a C string; an input with a NUL byte, which a string
 * cannot carry, also goes to cio_config_load() through a memfd, which reads
 * (pointer, length). Beyond the sanitizers, it checks the API's contract:
 * a configuration or an error text, never both or neither; every error line
 * is "fuzz:LINE: message"; each listener is found by its name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "coreio/config.h"
#include "fuzz.h"

/* Abort unless every line of @p errors starts with "@p name:". */
static void check_error_text(const char *errors, const char *name)
{
    size_t nlen = strlen(name);
    if (*errors == '\0')
        abort();
    for (const char *line = errors; *line; line = strchr(line, '\n') + 1) {
        if (strncmp(line, name, nlen) != 0 || line[nlen] != ':' || !strchr(line, '\n'))
            abort();
    }
}

/* Abort unless exactly one of @p c and @p errors came back, and each is well formed. */
static void check_result(cio_config_t *c, char *errors, const char *name)
{
    if ((c == NULL) == (errors == NULL))
        abort();
    if (errors)
        check_error_text(errors, name);
    for (size_t i = 0; c && i < c->nlisteners; i++) {
        const cio_config_listener_t *l = &c->listeners[i];
        if (cio_config_find_listener(c, l->name) != l || !cio_config_listener_same_socket(l, l))
            abort();
    }
    cio_config_free(c);
    free(errors);
}

/* The input as a file: a memfd, made once and rewritten for each input. */
static void load_from_memfd(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz.ini", MFD_CLOEXEC);
        if (fd < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    char *errors = NULL;
    cio_config_t *c = cio_config_load(path, &errors);
    check_result(c, errors, path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *errors = NULL;
    cio_config_t *c = cio_config_parse(text, "fuzz", &errors);
    check_result(c, errors, "fuzz");
    free(text);
    if (memchr(data, '\0', size))
        load_from_memfd(data, size);
    return 0;
}
