/*
 * fuzz/replay.c: main() for a fuzz target built without libFuzzer. Each
 * argument is a file, run through LLVMFuzzerTestOneInput() once, or a
 * directory, whose files are run in name order. Each input sits in a buffer
 * of exactly its size, so that a sanitizer sees any read past its end. Exit
 * status 0 when every file was read and run, 1 otherwise (a bug in the
 * target aborts, or a sanitizer ends the process).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Run the file at @p path. Returns 0 or -errno. */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rbe");
    if (!f)
        return -errno;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
        fclose(f);
        return -EIO;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *data = malloc(size ? size : 1);
    int rc = data ? 0 : -ENOMEM;
    if (data && size > 0 && fread(data, 1, size, f) != size)
        rc = -EIO;
    fclose(f);
    if (rc == 0)
        LLVMFuzzerTestOneInput(data, size);
    free(data);
    return rc;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int regular_file(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/* Run every file of the directory @p dir; *@p count grows by how many. 0 or -errno. */
static int replay_dir(const char *dir, size_t *count)
{
    struct dirent **names;
    int n = scandir(dir, &names, regular_file, by_name);
    if (n < 0)
        return -errno;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        int r = replay_file(path);
        if (r < 0) {
            fprintf(stderr, "%s: %s\n", path, strerror(-r));
            rc = r;
        } else {
            (*count)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    int failed = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIRECTORY...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        int rc = stat(argv[i], &st) != 0 ? -errno
                 : S_ISDIR(st.st_mode)   ? replay_dir(argv[i], &count)
                                         : replay_file(argv[i]);
        if (rc == 0 && !S_ISDIR(st.st_mode))
            count++;
        if (rc < 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(-rc));
            failed = 1;
        }
    }
    const char *slash = strrchr(argv[0], '/');
    printf("%s: %zu inputs replayed\n", slash ? slash + 1 : argv[0], count);
    return failed || count == 0;
}
