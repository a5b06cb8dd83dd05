/*
 * loop/tls_context.c: the SSL_CTX helpers of coreio/tls.h. Contexts are
 * OpenSSL's own; these only choose secure defaults and turn OpenSSL's
 * failures into coreio's error codes (a configuration checker names them).
 */
#include <errno.h>
#include <stdio.h>

#include <openssl/err.h>

#include "coreio/tls.h"
#include "internal.h"

/* Why @p path failed to load: its -errno when it cannot be opened, else @p bad. */
static int file_error(const char *path, int bad)
{
    FILE *f = fopen(path, "re"); /* e: CLOEXEC, as every descriptor coreio makes */
    if (!f)
        return -errno;
    fclose(f);
    return bad;
}

/* A context with what every coreio context has: TLS 1.2 at least, no compression. */
static int context_new(SSL_CTX **out, const SSL_METHOD *method)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (!ctx)
        return -ENOMEM;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* Idle connections give their record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    *out = ctx;
    return 0;
}

static int give_up(SSL_CTX *ctx, int err)
{
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return err;
}

int cio_tls_client_context(SSL_CTX **out, const char *cafile)
{
    if (!out)
        return -EINVAL;
    SSL_CTX *ctx;
    int rc = context_new(&ctx, TLS_client_method());
    if (rc < 0)
        return rc;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cafile ? !SSL_CTX_load_verify_locations(ctx, cafile, NULL)
               : !SSL_CTX_set_default_verify_paths(ctx))
        return give_up(ctx, cafile ? file_error(cafile, CIO_ETLSBADCA) : CIO_ETLSBADCA);
    *out = ctx;
    return 0;
}

int cio_tls_server_context(SSL_CTX **out, const char *certfile, const char *keyfile)
{
    if (!out || !certfile || !keyfile)
        return -EINVAL;
    SSL_CTX *ctx;
    int rc = context_new(&ctx, TLS_server_method());
    if (rc < 0)
        return rc;
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Resumption by session id too (tickets are on by default); the id context is required
     * for it once client certificates are asked for. */
    static const unsigned char sid_ctx[] = "coreio";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    if (!SSL_CTX_use_certificate_chain_file(ctx, certfile))
        return give_up(ctx, file_error(certfile, CIO_ETLSBADCERT));
    if (!SSL_CTX_use_PrivateKey_file(ctx, keyfile, SSL_FILETYPE_PEM)) {
        /* OpenSSL checks the pair as it loads the key: tell a mismatch from a bad file. */
        unsigned long e = ERR_peek_last_error();
        bool mismatch = ERR_GET_LIB(e) == ERR_LIB_X509 &&
                        ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH;
        return give_up(ctx, mismatch ? CIO_ETLSKEYMISMATCH : file_error(keyfile, CIO_ETLSBADKEY));
    }
    if (!SSL_CTX_check_private_key(ctx))
        return give_up(ctx, CIO_ETLSKEYMISMATCH);
    *out = ctx;
    return 0;
}

int cio_tls_context_verify_clients(SSL_CTX *ctx, const char *cafile, bool required)
{
    if (!ctx || !cafile)
        return -EINVAL;
    ERR_clear_error();
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cafile);
    if (!names || !SSL_CTX_load_verify_locations(ctx, cafile, NULL)) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        ERR_clear_error();
        return file_error(cafile, CIO_ETLSBADCA);
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    int mode = SSL_VERIFY_PEER | (required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    SSL_CTX_set_verify(ctx, mode, NULL);
    return 0;
}
