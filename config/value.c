/*
 * config/value.c: the syntaxes of ini values. Each reader takes the whole
 * value as inih trimmed it and accepts it only if all of it fits the syntax:
 * no sign, no blanks, no trailing garbage, no empty value. Numbers are read
 * digit by digit (not with strtoul/strtod, which take signs, blanks, hex,
 * "inf" and the locale's decimal point).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* Digits at @p s into @p out; the number of digits, with -ERANGE past @p max. */
static int read_digits(const char *s, uint64_t max, uint64_t *out, size_t *len)
{
    uint64_t v = 0;
    bool over = false;
    size_t i = 0;
    for (; isdigit((unsigned char)s[i]); i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > max || v > (max - d) / 10)
            over = true;
        else
            v = v * 10 + d;
    }
    *len = i;
    *out = v;
    return over ? -ERANGE : 0;
}

int cio__config_uint(const char *s, uint64_t max, uint64_t *out)
{
    /* A negative number is a number, only out of range. */
    bool negative = s[0] == '-';
    size_t len;
    int rc = read_digits(s + negative, max, out, &len);
    if (len == 0 || s[negative + len] != '\0')
        return -EINVAL;
    return negative ? -ERANGE : rc;
}

int cio__config_size(const char *s, uint64_t max, uint64_t *out)
{
    bool negative = s[0] == '-';
    size_t len;
    uint64_t v;
    int rc = read_digits(s + negative, UINT64_MAX, &v, &len);
    if (len == 0)
        return -EINVAL;
    const char *suffix = s + negative + len;
    unsigned shift = 0;
    if (*suffix != '\0') {
        const char *p = strchr("KMG", toupper((unsigned char)*suffix));
        if (!p || suffix[1] != '\0')
            return -EINVAL;
        shift = 10 * (unsigned)(p - "KMG" + 1);
    }
    if (negative || rc < 0 || v > (max >> shift))
        return -ERANGE;
    *out = v << shift;
    return 0;
}

int cio__config_duration(const char *s, double max, double *out)
{
    bool negative = s[0] == '-';
    const char *p = s + negative;
    double v = 0;
    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    for (; isdigit((unsigned char)*p); p++)
        v = v * 10 + (*p - '0');
    if (*p == '.') {
        double scale = 1;
        if (!isdigit((unsigned char)*++p))
            return -EINVAL;
        for (; isdigit((unsigned char)*p); p++)
            v += (*p - '0') * (scale /= 10);
    }
    if (strcmp(p, "ms") == 0)
        v /= 1000;
    else if (strcmp(p, "m") == 0)
        v *= 60;
    else if (strcmp(p, "s") != 0 && *p != '\0')
        return -EINVAL;
    /* Many digits overflow to infinity, which is past any maximum too. */
    if (negative || !(v <= max))
        return -ERANGE;
    *out = v;
    return 0;
}

int cio__config_keyword(const char *s, const char *const *words)
{
    for (int i = 0; words[i]; i++)
        if (strcasecmp(s, words[i]) == 0)
            return i;
    return -EINVAL;
}

int cio__config_bool(const char *s, bool *out)
{
    /* Even indexes are true, odd ones false. */
    static const char *const words[] = {"yes", "no", "on", "off", "true", "false", "1", "0", NULL};
    int i = cio__config_keyword(s, words);
    if (i < 0)
        return i;
    *out = i % 2 == 0;
    return 0;
}

int cio__config_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 ||
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != n)
        return -EINVAL;
    return n > CIO_CONFIG_NAME_MAX ? -ENAMETOOLONG : 0;
}

/* An IPv6 literal, with an optional %zone. */
static bool is_ipv6(const char *s, size_t n)
{
    char buf[INET6_ADDRSTRLEN + 1];
    struct in6_addr a;
    const char *zone = memchr(s, '%', n);
    size_t addr_len = zone ? (size_t)(zone - s) : n;
    if (addr_len >= sizeof(buf))
        return false;
    memcpy(buf, s, addr_len);
    buf[addr_len] = '\0';
    if (inet_pton(AF_INET6, buf, &a) != 1)
        return false;
    if (!zone)
        return true;
    size_t zone_len = n - addr_len - 1;
    return zone_len > 0 && zone_len < 64 && memchr(zone + 1, '%', zone_len) == NULL;
}

/* A host name or IPv4 address as written: letters, digits, '.', '-', '_'. */
static bool is_host_name(const char *s, size_t n)
{
    if (n == 0 || n > CIO__CONFIG_HOST_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(".-_", s[i]))
            return false;
    return true;
}

/* Split @p s at the port: the host part's span, or -EINVAL with @p why. */
static int split_host(const char *s, const char **host, size_t *host_len, const char **port,
                      char *why, size_t why_size)
{
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':') {
            snprintf(why, why_size, "expected [IPV6]:PORT");
            return -EINVAL;
        }
        *host = s + 1;
        *host_len = (size_t)(end - s - 1);
        *port = end + 2;
        if (!is_ipv6(*host, *host_len)) {
            snprintf(why, why_size, "\"%.*s\" is not an IPv6 address", (int)*host_len, *host);
            return -EINVAL;
        }
        return 0;
    }
    const char *colon = strrchr(s, ':');
    if (!colon) {
        snprintf(why, why_size, "expected HOST:PORT");
        return -EINVAL;
    }
    *host = s;
    *host_len = (size_t)(colon - s);
    *port = colon + 1;
    if (memchr(s, ':', *host_len)) {
        snprintf(why, why_size, "an IPv6 address goes in brackets: [%.*s]:PORT", (int)*host_len, s);
        return -EINVAL;
    }
    if (*host_len == 1 && s[0] == '*')
        *host = NULL;
    else if (!is_host_name(s, *host_len)) {
        snprintf(why, why_size, "\"%.*s\" is not a host name or address", (int)*host_len, s);
        return -EINVAL;
    }
    return 0;
}

int cio__config_address(const char *s, char **host, char **port, char *why, size_t why_size)
{
    const char *h, *p;
    size_t host_len;
    uint64_t num;
    int rc = split_host(s, &h, &host_len, &p, why, why_size);
    if (rc < 0)
        return rc;
    rc = cio__config_uint(p, 65535, &num);
    if (rc == -EINVAL) {
        snprintf(why, why_size, "port \"%s\" is not a number", p);
        return rc;
    }
    if (rc == -ERANGE) {
        snprintf(why, why_size, "port %s is out of range (0..65535)", p);
        return -EINVAL;
    }
    char digits[8];
    snprintf(digits, sizeof(digits), "%u", (unsigned)num);
    *host = h ? strndup(h, host_len) : NULL;
    *port = strdup(digits);
    if ((h && !*host) || !*port) {
        free(*host);
        free(*port);
        *host = *port = NULL;
        return -ENOMEM;
    }
    return 0;
}

bool cio__config_same_host(const char *a, const char *b)
{
    unsigned char x[sizeof(struct in6_addr)], y[sizeof(struct in6_addr)];
    if (!a || !b)
        return a == b;
    /* Numeric addresses compare by value ("::1" is "0::1"), names by spelling. */
    if (inet_pton(AF_INET, a, x) == 1 && inet_pton(AF_INET, b, y) == 1)
        return memcmp(x, y, sizeof(struct in_addr)) == 0;
    if (inet_pton(AF_INET6, a, x) == 1 && inet_pton(AF_INET6, b, y) == 1)
        return memcmp(x, y, sizeof(struct in6_addr)) == 0;
    return strcasecmp(a, b) == 0;
}

uint64_t cio__config_hash_host(uint64_t h, const char *host)
{
    unsigned char x[sizeof(struct in6_addr)];
    /* A kind byte, then what cio__config_same_host() compares: the value, or the folded name. */
    if (!host)
        return cio__config_hash_byte(h, '*');
    if (inet_pton(AF_INET, host, x) == 1)
        return cio__config_hash(cio__config_hash_byte(h, '4'), x, sizeof(struct in_addr));
    if (inet_pton(AF_INET6, host, x) == 1)
        return cio__config_hash(cio__config_hash_byte(h, '6'), x, sizeof(struct in6_addr));
    h = cio__config_hash_byte(h, 'n');
    for (const char *s = host; *s; s++)
        h = cio__config_hash_byte(h, (unsigned char)tolower((unsigned char)*s));
    return h;
}
