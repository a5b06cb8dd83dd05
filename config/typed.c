/*
 * config/typed.c: values of the keys services declare (cio_config_key_t). The
 * syntaxes are value.c's, the same as coreio's own keys, so a size or a
 * duration reads alike in [global] and in a [service] section; the range is
 * the key's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define PATH_LIMIT 4095 /* PATH_MAX less its NUL */

static const char *const type_names[] = {
    [CIO_CONFIG_STRING] = "string",   [CIO_CONFIG_INTEGER] = "integer",
    [CIO_CONFIG_SIZE] = "size",       [CIO_CONFIG_DURATION] = "duration",
    [CIO_CONFIG_BOOLEAN] = "boolean", [CIO_CONFIG_ADDRESS] = "address",
    [CIO_CONFIG_PATH] = "path",
};

const char *cio_config_type_name(cio_config_type_t type)
{
    if ((unsigned)type >= sizeof(type_names) / sizeof(type_names[0]))
        return "unknown";
    return type_names[type];
}

/* Whether @p key has a range of its own. */
static bool ranged(const cio_config_key_t *key)
{
    return key->min < key->max;
}

/* A decimal int64, optionally negative. */
static int read_integer(const cio_config_key_t *key, const char *text, int64_t *out)
{
    bool negative = text[0] == '-';
    uint64_t mag;
    if (negative && text[1] == '-')
        return -EINVAL;
    int rc =
        cio__config_uint(text + negative, negative ? (uint64_t)INT64_MAX + 1 : INT64_MAX, &mag);
    if (rc < 0)
        return rc;
    *out = negative ? (int64_t)(0 - mag) : (int64_t)mag;
    if (ranged(key) && ((double)*out < key->min || (double)*out > key->max))
        return -ERANGE;
    return 0;
}

static int read_size(const cio_config_key_t *key, const char *text, uint64_t *out)
{
    uint64_t max = ranged(key) && key->max < 9.2e18 ? (uint64_t)key->max : (uint64_t)INT64_MAX;
    int rc = cio__config_size(text, max, out);
    if (rc == 0 && ranged(key) && (double)*out < key->min)
        rc = -ERANGE;
    return rc;
}

static int read_duration(const cio_config_key_t *key, const char *text, double *out)
{
    double max = ranged(key) ? key->max : CIO__CONFIG_DURATION_MAX;
    int rc = cio__config_duration(text, max, out);
    if (rc == 0 && ranged(key) && *out < key->min)
        rc = -ERANGE;
    return rc;
}

/* The message for a refused value. */
static void explain(const cio_config_key_t *key, int rc, const char *text, char *why, size_t size)
{
    static const char *const syntax[] = {
        [CIO_CONFIG_INTEGER] = "an integer",
        [CIO_CONFIG_SIZE] = "a size (bytes, or a number with K, M or G)",
        [CIO_CONFIG_DURATION] = "a duration (a number with ms, s or m)",
        [CIO_CONFIG_BOOLEAN] = "a boolean (yes/no, on/off, true/false, 1/0)",
        [CIO_CONFIG_PATH] = "an absolute path",
    };
    if (rc == -ERANGE && ranged(key))
        snprintf(why, size, "%s is out of range (%g..%g)", text, key->min, key->max);
    else if (rc == -ERANGE)
        snprintf(why, size, "%s is out of range", text);
    else if (key->type < sizeof(syntax) / sizeof(syntax[0]) && syntax[key->type])
        snprintf(why, size, "\"%s\" is not %s", text, syntax[key->type]);
    else
        snprintf(why, size, "\"%s\" is not a valid %s", text, cio_config_type_name(key->type));
}

static int read_text(const cio_config_key_t *key, const char *text, cio_config_value_t *out,
                     char *why, size_t size)
{
    if (key->type == CIO_CONFIG_PATH && (text[0] != '/' || strlen(text) > PATH_LIMIT))
        return -EINVAL;
    if (key->type == CIO_CONFIG_ADDRESS) {
        int rc = cio__config_address(text, &out->u.address.host, &out->u.address.port, why, size);
        return rc == -EINVAL ? -EBADMSG : rc; /* the message is written */
    }
    return (out->u.string = strdup(text)) ? 0 : -ENOMEM;
}

int cio_config_value_parse(const cio_config_key_t *key, const char *text, cio_config_value_t *out,
                           char *why, size_t why_size)
{
    char local[160];
    if (!key || !text || !out || (unsigned)key->type > CIO_CONFIG_PATH)
        return -EINVAL;
    if (!why || !why_size) {
        why = local;
        why_size = sizeof(local);
    }
    memset(out, 0, sizeof(*out));
    out->type = key->type;
    int rc;
    switch (key->type) {
    case CIO_CONFIG_INTEGER:
        rc = read_integer(key, text, &out->u.integer);
        break;
    case CIO_CONFIG_SIZE:
        rc = read_size(key, text, &out->u.size);
        break;
    case CIO_CONFIG_DURATION:
        rc = read_duration(key, text, &out->u.duration);
        break;
    case CIO_CONFIG_BOOLEAN:
        rc = cio__config_bool(text, &out->u.boolean);
        break;
    default:
        rc = read_text(key, text, out, why, why_size);
        break;
    }
    if (rc == -EBADMSG)
        return -EINVAL;
    if (rc < 0 && rc != -ENOMEM)
        explain(key, rc, text, why, why_size);
    return rc;
}

void cio_config_value_clear(cio_config_value_t *v)
{
    if (!v)
        return;
    if (v->type == CIO_CONFIG_STRING || v->type == CIO_CONFIG_PATH)
        free(v->u.string);
    if (v->type == CIO_CONFIG_ADDRESS) {
        free(v->u.address.host);
        free(v->u.address.port);
    }
    memset(v, 0, sizeof(*v));
}
