/*
 * config/config.c: ini text to cio_config_t. The text is split into lines
 * here, and each line is judged here before inih sees it, for what inih as
 * packaged cannot do: its line buffer (INI_MAX_LINE, 200 bytes in Debian's
 * build) splits a longer line into pieces that read as lines of their own; it
 * keeps 49 bytes of a section name; it reports only its first syntax error;
 * and it continues a value on an indented line. So this file reads section
 * headers, comments and blank lines itself, refuses lines over
 * CIO_CONFIG_LINE_MAX, and hands inih one key line at a time to split into
 * key and value. Each error is collected with its line; the first
 * CIO_CONFIG_ERRORS_MAX in line order are returned, sorted by line, and the
 * others counted, so that neither the time nor the memory an error costs
 * grows with the number of errors before it.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* cio_config_load() reads a device or a pipe, whose size is not known, in pieces this large. */
#define READ_CHUNK (64u << 10)

static const char default_text[] =
    "; coreio default configuration: what coreiod runs when no -c FILE is given.\n"
    "; coreio.ini(5) documents every key; coreiod --print-default-config prints this.\n"
    "\n"
    "[global]\n"
    "; One worker per core, each pinned to its core.\n"
    "workers = 0\n"
    "; Statistics in Prometheus text format: GET http://127.0.0.1:9100/metrics\n"
    "admin = 127.0.0.1:9100\n"
    "\n"
    "; RFC 862 echo over TCP and over UDP, on the same port.\n"
    "[listener echo-tcp]\n"
    "service = echo\n"
    "protocol = tcp\n"
    "address = 127.0.0.1:7007\n"
    "\n"
    "[listener echo-udp]\n"
    "service = echo\n"
    "protocol = udp\n"
    "address = 127.0.0.1:7007\n"
    "\n"
    "; A minimal HTTP/1.1 responder: \"Hello, World!\" to every request.\n"
    "[listener http]\n"
    "service = http-hello\n"
    "protocol = tcp\n"
    "address = 127.0.0.1:8080\n";

const char *cio_config_default_text(void)
{
    return default_text;
}

/* ---- errors ------------------------------------------------------------------- */

/* Whether @p a comes before @p b in the text: by line, then in the order found. */
static bool error_before(const cio__config_error_t *a, const cio__config_error_t *b)
{
    return a->line != b->line ? a->line < b->line : a->seq < b->seq;
}

static void swap_errors(cio__config_error_t *v, size_t i, size_t j)
{
    cio__config_error_t t = v[i];
    v[i] = v[j];
    v[j] = t;
}

/* Restore the max-heap of @p n errors after v[i] became earlier. */
static void sift_down(cio__config_error_t *v, size_t n, size_t i)
{
    for (;;) {
        size_t last = i, l = 2 * i + 1, r = l + 1;
        if (l < n && error_before(&v[last], &v[l]))
            last = l;
        if (r < n && error_before(&v[last], &v[r]))
            last = r;
        if (last == i)
            return;
        swap_errors(v, i, last);
        i = last;
    }
}

/* Restore the max-heap after v[i] was added at its end. */
static void sift_up(cio__config_error_t *v, size_t i)
{
    while (i > 0 && error_before(&v[(i - 1) / 2], &v[i])) {
        swap_errors(v, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

void cio__config_error(cio__parser_t *p, unsigned line, const char *fmt, ...)
{
    cio__config_error_t e = {line, p->nerrors++, NULL};
    bool full = p->nkept == CIO_CONFIG_ERRORS_MAX;
    va_list ap;
    /* Errors come nearly in line order: most past the limit are only counted, unformatted. */
    if (full && !error_before(&e, &p->errors[0]))
        return;
    va_start(ap, fmt);
    int n = vasprintf(&e.text, fmt, ap);
    va_end(ap);
    if (n < 0) {
        p->oom = true;
        return;
    }
    if (full) {
        free(p->errors[0].text);
        p->errors[0] = e;
        sift_down(p->errors, p->nkept, 0);
    } else {
        p->errors[p->nkept++] = e;
        sift_up(p->errors, p->nkept - 1);
    }
}

char *cio__config_strdup(cio__parser_t *p, const char *s)
{
    char *d = strdup(s);
    if (!d)
        p->oom = true;
    return d;
}

static int by_line(const void *a, const void *b)
{
    const cio__config_error_t *x = a, *y = b;
    return error_before(x, y) ? -1 : error_before(y, x);
}

/*
 * The errors kept as one text, "FILE:LINE: message\n" each, in line order,
 * then "FILE: N more errors" for those only counted; NULL if out of memory.
 */
static char *error_text(cio__parser_t *p)
{
    char *text = NULL;
    size_t size = 0, more = p->nerrors - p->nkept;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return NULL;
    qsort(p->errors, p->nkept, sizeof(*p->errors), by_line);
    for (size_t i = 0; i < p->nkept; i++)
        fprintf(f, "%s:%u: %s\n", p->file, p->errors[i].line, p->errors[i].text);
    if (more)
        fprintf(f, "%s: %zu more error%s (only the first %d are listed)\n", p->file, more,
                more == 1 ? "" : "s", CIO_CONFIG_ERRORS_MAX);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* ---- hashing ------------------------------------------------------------------ */

uint64_t cio__config_hash(uint64_t h, const void *s, size_t n)
{
    const unsigned char *b = s;
    for (size_t i = 0; i < n; i++)
        h = cio__config_hash_byte(h, b[i]);
    return h;
}

size_t cio__config_index_next(const cio__config_index_t *ix, uint64_t hash, size_t *pos)
{
    if (!ix->slots)
        return SIZE_MAX;
    /* Linear probing: the run of used slots from the hash's home holds every candidate. */
    for (size_t i = (size_t)hash + *pos; ix->slots[i & ix->mask].item; i++) {
        const cio__config_slot_t *s = &ix->slots[i & ix->mask];
        ++*pos;
        if (s->hash == hash)
            return s->item - 1;
    }
    return SIZE_MAX;
}

/* Put @p item in the first free slot of its run (there is room: the table is half empty). */
static void index_put(cio__config_slot_t *slots, size_t mask, uint64_t hash, size_t item)
{
    size_t i = (size_t)hash;
    while (slots[i & mask].item)
        i++;
    slots[i & mask] = (cio__config_slot_t){hash, item};
}

int cio__config_index_add(cio__config_index_t *ix, uint64_t hash, size_t item)
{
    if (2 * (ix->count + 1) > ix->mask + 1 || !ix->slots) {
        size_t n = ix->slots ? 2 * (ix->mask + 1) : 64;
        cio__config_slot_t *slots = calloc(n, sizeof(*slots));
        if (!slots)
            return -ENOMEM;
        for (size_t i = 0; ix->slots && i <= ix->mask; i++)
            if (ix->slots[i].item)
                index_put(slots, n - 1, ix->slots[i].hash, ix->slots[i].item);
        free(ix->slots);
        ix->slots = slots;
        ix->mask = n - 1;
    }
    index_put(ix->slots, ix->mask, hash, item + 1);
    ix->count++;
    return 0;
}

void cio__config_index_free(cio__config_index_t *ix)
{
    free(ix->slots);
    memset(ix, 0, sizeof(*ix));
}

/* "FILE: message\n" for a file that could not be read at all. */
static void fail_file(const char *file, int err, char **errors)
{
    int n;
    if (!errors)
        return;
    if (err == EFBIG)
        n = asprintf(errors, "%s: file is larger than %u MiB\n", file, CIO_CONFIG_FILE_MAX >> 20);
    else
        n = asprintf(errors, "%s: %s\n", file, strerror(err));
    if (n < 0)
        *errors = NULL;
}

/* ---- sections ----------------------------------------------------------------- */

/* Finish the current section: its checks, then what only it owned. */
static void close_section(cio__parser_t *p)
{
    cio__section_t *s = &p->sec;
    if (s->kind == CIO__SECTION_GLOBAL)
        cio__config_end_global(p);
    else if (s->kind == CIO__SECTION_LISTENER)
        cio__config_end_listener(p);
    else if (s->kind == CIO__SECTION_MODULE)
        cio__config_end_module(p);
    if (s->scratch && s->kind == CIO__SECTION_GLOBAL)
        cio__config_global_clear(&p->scratch_global);
    else if (s->scratch)
        cio__config_listener_clear(&p->scratch_listener);
    free(s->title);
    free(s->address);
    memset(s, 0, sizeof(*s));
}

static void open_global(cio__parser_t *p)
{
    p->sec.kind = CIO__SECTION_GLOBAL;
    p->sec.target = p->c;
    if (!p->global_line) {
        p->global_line = p->lineno;
        return;
    }
    /* A second [global] is read, for its errors, into a struct thrown away after. */
    cio__config_error(p, p->lineno, "duplicate section [global] (first at line %u)",
                      p->global_line);
    cio__config_global_defaults(p, &p->scratch_global);
    p->sec.target = &p->scratch_global;
    p->sec.scratch = true;
}

/* The listener called @p name (whose hash is @p h), or NULL. */
static const cio_config_listener_t *find_name(const cio__parser_t *p, const char *name, uint64_t h)
{
    size_t pos = 0, i;
    while ((i = cio__config_index_next(&p->names, h, &pos)) != SIZE_MAX)
        if (strcmp(p->c->listeners[i].name, name) == 0)
            return &p->c->listeners[i];
    return NULL;
}

/* A new listener at the end of the list, known by @p name; NULL if out of memory. */
static cio_config_listener_t *add_listener(cio__parser_t *p, const char *name, uint64_t h)
{
    cio_config_t *c = p->c;
    if (c->nlisteners == p->listeners_cap) {
        /* Doubling: the copies cost the list's length once over, not once per listener. */
        size_t cap = p->listeners_cap ? 2 * p->listeners_cap : 8;
        cio_config_listener_t *v = realloc(c->listeners, cap * sizeof(*v));
        if (!v)
            return NULL;
        c->listeners = v;
        p->listeners_cap = cap;
    }
    cio_config_listener_t *l = &c->listeners[c->nlisteners];
    memset(l, 0, sizeof(*l));
    cio__config_listener_defaults(l);
    if (!(l->name = strdup(name)) || cio__config_index_add(&p->names, h, c->nlisteners) < 0) {
        free(l->name);
        return NULL;
    }
    l->line = p->lineno;
    c->nlisteners++;
    return l;
}

/* [listener NAME]: exactly one space, then a NAME no other listener has. */
static void open_listener(cio__parser_t *p, const char *header)
{
    bool one_space = header[8] == ' ';
    const char *name = one_space ? header + 9 : "";
    uint64_t h = cio__config_hash(CIO__CONFIG_HASH_SEED, name, strlen(name));
    const cio_config_listener_t *other = NULL;
    int rc = one_space ? cio__config_name(name) : -EINVAL;
    if (rc == -ENAMETOOLONG)
        cio__config_error(p, p->lineno, "listener name too long (%zu bytes, at most %d)",
                          strlen(name), CIO_CONFIG_NAME_MAX);
    else if (rc < 0)
        cio__config_error(p, p->lineno,
                          "[%s]: expected [listener NAME], the NAME made of letters, digits, "
                          "'_', '.' and '-'",
                          header);
    else if ((other = find_name(p, name, h)))
        cio__config_error(p, p->lineno, "duplicate section [listener %s] (first at line %u)", name,
                          other->line);
    p->sec.kind = CIO__SECTION_LISTENER;
    if (rc < 0 || other) {
        /* Read for its errors into a struct thrown away after. */
        cio__config_listener_defaults(&p->scratch_listener);
        p->sec.target = &p->scratch_listener;
        p->sec.scratch = true;
        return;
    }
    if (!(p->sec.target = add_listener(p, name, h))) {
        p->oom = true;
        p->sec.kind = CIO__SECTION_SKIP;
    }
}

/* A line starting with '[' (@p s, NUL-terminated, blanks skipped). */
static void read_header(cio__parser_t *p, char *s)
{
    close_section(p);
    p->sec.kind = CIO__SECTION_SKIP; /* until the header proves good */
    p->sec.line = p->lineno;
    char *end = strchr(s, ']');
    if (!end) {
        cio__config_error(p, p->lineno, "section header without its closing ']'");
        return;
    }
    *end = '\0';
    const char *rest = end + 1 + strspn(end + 1, " \t");
    if (*rest && *rest != ';' && *rest != '#') {
        cio__config_error(p, p->lineno, "unexpected text after [%s]: \"%s\"", s + 1, rest);
        return;
    }
    const char *name = s + 1;
    p->sec.title = cio__config_strdup(p, name);
    if (strcmp(name, "global") == 0)
        open_global(p);
    else if (strncmp(name, "listener", 8) == 0 &&
             (name[8] == '\0' || isspace((unsigned char)name[8])))
        open_listener(p, name);
    else if (strncmp(name, "service", 7) == 0 &&
             (name[7] == '\0' || isspace((unsigned char)name[7])))
        cio__config_open_service(p, name);
    else if (strncmp(name, "module", 6) == 0 &&
             (name[6] == '\0' || isspace((unsigned char)name[6])))
        cio__config_open_module(p, name);
    else
        cio__config_error(p, p->lineno, "unknown section [%s]", name);
}

/* ---- key lines, through inih ------------------------------------------------- */

/*
 * inih's reader, for one line. A line longer than inih's buffer (@p num) is
 * cut after its '=' or ':'; on_key() then reads the value here, as inih
 * would have.
 */
static char *feed_line(char *buf, int num, void *stream)
{
    cio__parser_t *p = stream;
    size_t n = p->feed_len;
    if (p->fed)
        return NULL;
    p->fed = true;
    if (n + 2 > (size_t)num) {
        size_t head = strcspn(p->feed, "=:");
        if (head == n || head + 3 > (size_t)num) {
            n = 0; /* no key = value, or a key longer than any known one */
        } else {
            p->tail = p->feed + head + 1;
            p->tail_len = n - head - 1;
            n = head + 1;
        }
    }
    memcpy(buf, p->feed, n);
    buf[n] = '\n';
    buf[n + 1] = '\0';
    return buf;
}

/* The value of a cut line, as inih reads one: up to an inline comment, blanks trimmed. */
static void read_tail(const char *s, size_t n, char *out)
{
    size_t start = 0, end = 0;
    bool was_space = false;
#if INI_ALLOW_INLINE_COMMENTS
    for (; end < n && !(was_space && strchr(INI_INLINE_COMMENT_PREFIXES, s[end])); end++)
        was_space = isspace((unsigned char)s[end]);
#else
    end = n;
#endif
    while (start < end && isspace((unsigned char)s[start]))
        start++;
    while (end > start && isspace((unsigned char)s[end - 1]))
        end--;
    memcpy(out, s + start, end - start);
    out[end - start] = '\0';
}

#if INI_HANDLER_LINENO
static int on_key(void *user, const char *section, const char *name, const char *value, int lineno)
#else
static int on_key(void *user, const char *section, const char *name, const char *value)
#endif
{
    cio__parser_t *p = user;
    char tail[CIO_CONFIG_LINE_MAX + 1];
    if (!value)
        return 1; /* a name alone (INI_ALLOW_NO_VALUE): left to the syntax error */
    p->handled = true;
    if (p->tail) {
        read_tail(p->tail, p->tail_len, tail);
        value = tail;
    }
    cio__config_set(p, name, value);
    return 1;
}

static void read_key_line(cio__parser_t *p, const char *s, size_t n)
{
    p->feed = s;
    p->feed_len = n;
    p->fed = false;
    p->tail = NULL;
    p->handled = false;
    int rc = ini_parse_stream(feed_line, p, on_key, p);
    if (rc == -2)
        p->oom = true;
    else if (rc != 0 || !p->handled)
        cio__config_error(p, p->lineno, "expected KEY = VALUE, [SECTION] or a comment");
}

/* ---- lines -------------------------------------------------------------------- */

/* One line of the file, newline excluded. */
static void read_line(cio__parser_t *p, const char *line, size_t n)
{
    char buf[CIO_CONFIG_LINE_MAX + 1];
    if (p->lineno == 1 && n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
        line += 3, n -= 3; /* a UTF-8 byte order mark */
    size_t blanks = 0;
    while (blanks < n && isspace((unsigned char)line[blanks]))
        blanks++;
    if (n > CIO_CONFIG_LINE_MAX) {
        cio__config_error(p, p->lineno, "line too long (%zu bytes, at most %d)", n,
                          CIO_CONFIG_LINE_MAX);
        if (blanks < n && line[blanks] == '[') {
            /* What follows belongs to a section that cannot be read. */
            close_section(p);
            p->sec.kind = CIO__SECTION_SKIP;
        }
        return;
    }
    if (memchr(line, '\0', n)) {
        cio__config_error(p, p->lineno, "NUL byte in the line");
        return;
    }
    memcpy(buf, line + blanks, n - blanks);
    buf[n - blanks] = '\0';
    if (buf[0] == '\0' || strchr(INI_START_COMMENT_PREFIXES, buf[0]))
        return;
    if (buf[0] == '[')
        read_header(p, buf);
    else
        read_key_line(p, buf, n - blanks);
}

static void read_text(cio__parser_t *p, const char *text, size_t len)
{
    const char *s = text, *end = text + len;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
        p->lineno++;
        read_line(p, s, n && s[n - 1] == '\r' ? n - 1 : n);
        s += n + 1;
    }
    close_section(p);
}

/* ---- the API ---------------------------------------------------------------- */

void cio_config_check_error(cio_config_check_t *chk, unsigned line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cio__config_error(chk, line, "%s", msg);
}

static cio_config_t *parse(const char *text, size_t len, const char *name,
                           cio_config_checker_t check, void *arg, char **errors)
{
    cio__parser_t p = {.file = name};
    cio_config_t *c = calloc(1, sizeof(*c));
    if (errors)
        *errors = NULL;
    if (!c) {
        fail_file(name, ENOMEM, errors);
        return NULL;
    }
    p.c = c;
    c->file = cio__config_strdup(&p, name);
    cio__config_global_defaults(&p, c);
    read_text(&p, text, len);
    if (check && !p.oom)
        check(c, &p, arg);
    if (p.oom || p.nerrors) {
        if (p.oom)
            fail_file(name, ENOMEM, errors);
        else if (errors && !(*errors = error_text(&p)))
            fail_file(name, ENOMEM, errors);
        cio_config_free(c);
        c = NULL;
    }
    for (size_t i = 0; i < p.nkept; i++)
        free(p.errors[i].text);
    cio__config_index_free(&p.names);
    cio__config_index_free(&p.addresses);
    cio__config_index_free(&p.service_names);
    cio__config_index_free(&p.module_names);
    return c;
}

int cio_config_check(const cio_config_t *c, cio_config_checker_t check, void *arg, char **errors)
{
    cio__parser_t p = {.file = c->file ? c->file : "<config>"};
    if (errors)
        *errors = NULL;
    check(c, &p, arg);
    int rc = p.oom ? -ENOMEM : p.nerrors ? -EINVAL : 0;
    if (rc == -EINVAL && errors && !(*errors = error_text(&p)))
        rc = -ENOMEM;
    for (size_t i = 0; i < p.nkept; i++)
        free(p.errors[i].text);
    return rc;
}

cio_config_t *cio_config_parse_checked(const char *text, const char *name,
                                       cio_config_checker_t check, void *arg, char **errors)
{
    if (!name)
        name = "<text>";
    if (!text) {
        fail_file(name, EINVAL, errors);
        return NULL;
    }
    return parse(text, strlen(text), name, check, arg, errors);
}

cio_config_t *cio_config_parse(const char *text, const char *name, char **errors)
{
    return cio_config_parse_checked(text, name, NULL, NULL, errors);
}

/* Room for @p want more bytes after the @p n in *@p buf, doubling up to @p limit; 0 or -ENOMEM. */
static int make_room(char **buf, size_t *size, size_t n, size_t want, size_t limit)
{
    if (*size - n >= want)
        return 0;
    size_t grown = 2 * *size > n + want ? 2 * *size : n + want;
    if (grown > limit)
        grown = limit; /* never below n + want: callers ask for no more than the limit */
    char *b = realloc(*buf, grown);
    if (!b)
        return -ENOMEM;
    *buf = b;
    *size = grown;
    return 0;
}

/*
 * The whole file at @p path into a malloc'd buffer; 0 or -errno, -EFBIG past
 * CIO_CONFIG_FILE_MAX bytes. The buffer grows with what is read (from the
 * size fstat() gives, a guess only), so a device such as /dev/zero stops at
 * the limit.
 */
static int read_file(const char *path, char **text, size_t *len)
{
    const size_t limit = (size_t)CIO_CONFIG_FILE_MAX + 1;
    struct stat st;
    char *buf = NULL;
    size_t n = 0, size = 0;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        rc = -errno;
    else if (S_ISDIR(st.st_mode))
        rc = -EISDIR;
    else if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > CIO_CONFIG_FILE_MAX)
        rc = -EFBIG;
    while (rc == 0 && n < limit) {
        /* A regular file in one read, and one byte more to see its end. */
        size_t want =
            S_ISREG(st.st_mode) && (size_t)st.st_size >= n ? st.st_size + 1 - n : READ_CHUNK;
        want = want < limit - n ? want : limit - n;
        if ((rc = make_room(&buf, &size, n, want, limit)) < 0)
            break;
        ssize_t got = read(fd, buf + n, want);
        if (got < 0 && errno != EINTR)
            rc = -errno;
        if (got == 0)
            break;
        n += got > 0 ? (size_t)got : 0;
    }
    close(fd);
    if (rc == 0 && n == limit)
        rc = -EFBIG;
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *text = buf;
    *len = n;
    return 0;
}

cio_config_t *cio_config_load(const char *path, char **errors)
{
    return cio_config_load_checked(path, NULL, NULL, errors);
}

cio_config_t *cio_config_load_checked(const char *path, cio_config_checker_t check, void *arg,
                                      char **errors)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len);
    if (rc < 0) {
        if (errors)
            *errors = NULL;
        fail_file(path, -rc, errors);
        return NULL;
    }
    cio_config_t *c = parse(text, len, path, check, arg, errors);
    free(text);
    return c;
}

const cio_config_listener_t *cio_config_find_listener(const cio_config_t *c, const char *name)
{
    for (size_t i = 0; c && name && i < c->nlisteners; i++)
        if (c->listeners[i].name && strcmp(c->listeners[i].name, name) == 0)
            return &c->listeners[i];
    return NULL;
}

static bool same_string(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

bool cio_config_listener_same_socket(const cio_config_listener_t *a, const cio_config_listener_t *b)
{
    if (!a || !b)
        return false;
    return a->protocol == b->protocol && a->balance == b->balance && a->backlog == b->backlog &&
           cio__config_same_host(a->host, b->host) && same_string(a->port, b->port) &&
           same_string(a->path, b->path);
}

/* An IPv4 range uses the first 4 bytes of addr only. */
static bool same_range(const cio_cidr_t *a, const cio_cidr_t *b)
{
    size_t len = a->family == AF_INET ? 4 : sizeof(a->addr);
    return a->family == b->family && a->prefix == b->prefix && memcmp(a->addr, b->addr, len) == 0;
}

bool cio_config_listener_same_proxy(const cio_config_listener_t *a, const cio_config_listener_t *b)
{
    if (!a || !b)
        return a == b;
    if (a->proxy_protocol != b->proxy_protocol || a->nproxy_trusted != b->nproxy_trusted)
        return false;
    for (size_t i = 0; i < a->nproxy_trusted; i++)
        if (!same_range(&a->proxy_trusted[i], &b->proxy_trusted[i]))
            return false;
    return true;
}

void cio_config_free(cio_config_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nlisteners; i++)
        cio__config_listener_clear(&c->listeners[i]);
    free(c->listeners);
    cio__config_sections_clear(c);
    cio__config_global_clear(c);
    free(c->file);
    free(c);
}
