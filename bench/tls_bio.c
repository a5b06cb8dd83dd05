/*
 * bench/tls_bio.c: the measurement behind loop/tls.c's BIO. A receiver takes
 * a stream of TLS records from a sender thread over a Unix socket pair, two
 * ways:
 *   socket  OpenSSL reads the socket itself through its BIO (what coreio's
 *           BIO does: recv() straight into OpenSSL's record buffer);
 *   membio  asyncio's sslproto: recv() into a buffer, BIO_write() it into a
 *           memory BIO, SSL_read() from there.
 * It prints, for each and for 1 KiB and 64 KiB messages, the receiver's CPU
 * time per MiB, and the heap a connection still holds once it is idle
 * (mallinfo2), which is what an idle TLS connection costs.
 *
 *   bench/tls_bio CERT KEY [MiB]
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define RBUF (256 * 1024)

static int quiet; /* the warm-up run: OpenSSL's one-time allocations are not a connection's */

typedef struct sender {
    SSL *ssl;
    size_t msg, total;
} sender_t;

static void die(const char *what)
{
    fprintf(stderr, "tls_bio: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static void *send_all(void *arg)
{
    sender_t *s = arg;
    char *buf = calloc(1, s->msg);
    for (size_t sent = 0; sent < s->total; sent += s->msg)
        if (SSL_write(s->ssl, buf, (int)s->msg) <= 0)
            die("SSL_write");
    free(buf);
    return NULL;
}

static void *handshake(void *arg)
{
    if (SSL_do_handshake(arg) != 1)
        die("client handshake");
    return NULL;
}

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* membio: feed what recv() got into the read BIO; send what the write BIO holds. */
static int membio_pump(SSL *ssl, int fd, char *buf)
{
    BIO *w = SSL_get_wbio(ssl);
    int n;
    while ((n = BIO_read(w, buf, RBUF)) > 0)
        if (write(fd, buf, (size_t)n) != n)
            return -1;
    ssize_t r = recv(fd, buf, RBUF, 0);
    if (r <= 0)
        return -1;
    return BIO_write(SSL_get_rbio(ssl), buf, (int)r) == r ? 0 : -1;
}

static SSL *receiver(SSL_CTX *ctx, int fd, int membio)
{
    SSL *ssl = SSL_new(ctx);
    SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    if (membio)
        SSL_set_bio(ssl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    else
        SSL_set_fd(ssl, fd), SSL_set_read_ahead(ssl, 1);
    SSL_set_accept_state(ssl);
    return ssl;
}

/* Read @p total bytes of plaintext; the receiver's CPU seconds. */
static double receive(SSL *ssl, int fd, int membio, size_t total)
{
    char *plain = malloc(RBUF), *buf = malloc(RBUF);
    double t0 = thread_cpu();
    for (size_t got = 0; got < total;) {
        int n = SSL_read(ssl, plain, RBUF);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        int e = SSL_get_error(ssl, n);
        if (!(membio && e == SSL_ERROR_WANT_READ) || membio_pump(ssl, fd, buf) < 0)
            die("SSL_read");
    }
    double cpu = thread_cpu() - t0;
    free(plain);
    free(buf);
    return cpu;
}

static size_t heap_used(void)
{
    return mallinfo2().uordblks;
}

static void run(SSL_CTX *sctx, SSL_CTX *cctx, int membio, size_t msg, size_t total)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        die("socketpair");
    size_t heap0 = heap_used();
    SSL *srv = receiver(sctx, sv[0], membio);
    SSL *cli = SSL_new(cctx);
    SSL_set_fd(cli, sv[1]);
    SSL_set_connect_state(cli);
    pthread_t th;
    pthread_create(&th, NULL, handshake, cli);
    while (SSL_do_handshake(srv) != 1)
        if (!membio || SSL_get_error(srv, -1) != SSL_ERROR_WANT_READ ||
            membio_pump(srv, sv[0], (char[RBUF]){0}) < 0)
            die("server handshake");
    pthread_join(th, NULL);
    sender_t s = {cli, msg, total};
    pthread_create(&th, NULL, send_all, &s);
    double cpu = receive(srv, sv[0], membio, total);
    pthread_join(th, NULL);
    size_t idle = heap_used() - heap0;
    if (!quiet)
        printf("%s\t%zu B messages\t%.1f us CPU/MiB\t%zu B heap per idle connection (both ends)\n",
           membio ? "membio" : "socket", msg, cpu * 1e6 / ((double)total / (1 << 20)), idle);
    SSL_free(srv);
    SSL_free(cli);
    close(sv[0]);
    close(sv[1]);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        die("usage: tls_bio CERT KEY [MiB]");
    size_t mib = argc > 3 ? strtoul(argv[3], NULL, 10) : 256;
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    if (!SSL_CTX_use_certificate_chain_file(sctx, argv[1]) ||
        !SSL_CTX_use_PrivateKey_file(sctx, argv[2], SSL_FILETYPE_PEM))
        die("certificate");
    SSL_CTX_set_mode(cctx, SSL_MODE_RELEASE_BUFFERS);
    quiet = 1;
    run(sctx, cctx, 0, 1024, 1 << 20);
    run(sctx, cctx, 1, 1024, 1 << 20);
    quiet = 0;
    size_t sizes[] = {1024, 65536};
    for (int i = 0; i < 2; i++)
        for (int membio = 0; membio < 2; membio++)
            run(sctx, cctx, membio, sizes[i], mib << 20);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return 0;
}
