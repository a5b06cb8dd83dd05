/*
 * coreio/tls.h: TLS over stream transports (asyncio: the ssl= argument of
 * create_connection, create_server, their Unix twins and
 * connect_accepted_socket, and loop.start_tls). The one public header that
 * includes OpenSSL: contexts are OpenSSL's own SSL_CTX, which the caller
 * makes (with the helpers below or by hand) and may tune with any SSL_CTX_*
 * call; every connection takes its own reference, so the caller may free
 * its context at once.
 *
 * What a TLS transport guarantees its protocol:
 *  - connection_made runs once the handshake is done, never before; a
 *    handshake that fails or times out skips it and goes straight to
 *    connection_lost(err), so a protocol from a server's factory still
 *    frees itself;
 *  - data_received (or get_buffer/buffer_updated) sees plaintext only;
 *  - the peer's close_notify is eof_received (whose return value is
 *    ignored, as in asyncio: TLS has no half-close) followed by a close; a
 *    connection that ends without close_notify is connection_lost with
 *    CIO_ETLSTRUNCATED, never a clean end (RFC 8446, 6.1);
 *  - close() sends what is buffered, then close_notify, then closes the
 *    socket without waiting for the peer's close_notify (RFC 8446 allows
 *    it; asyncio's wait was the 30 s hang of aiohttp#11091); the shutdown
 *    timeout bounds how long the buffered bytes may take to leave, after
 *    which connection_lost gets CIO_ETLSSHUTDOWNTIMEOUT; abort() drops the
 *    buffer, and sends close_notify only if nothing was buffered;
 *  - close() during the handshake ends it: the waiters fail with
 *    -ECONNABORTED and the protocol gets connection_lost(0);
 *  - write() encrypts at once: the write buffer holds TLS records, so the
 *    water marks apply to the plaintext plus 22 to 29 bytes per 16 KiB
 *    record; a write is all or nothing, as on a plain transport;
 *  - can_write_eof() is false and write_eof() fails with -ENOTSUP;
 *  - get_extra_info() answers "peercert", "cipher", "compression",
 *    "ssl_object" and "sslcontext" besides the plain transport's keys;
 *  - every failure is connection_lost with a code whose cio_strerror()
 *    names the reason (CIO_ETLS* in coreio/error.h). Like a reset, a TLS
 *    failure closes quietly, without the exception handler; in debug mode
 *    (cio_loop_set_debug) OpenSSL's own text is logged.
 * An idle TLS connection keeps no OpenSSL read or write buffer.
 *
 * Loop thread only, except the context helpers (any thread).
 */
#ifndef COREIO_TLS_H
#define COREIO_TLS_H

#include <openssl/ssl.h>

#include "coreio/common.h"
#include "coreio/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/** asyncio's defaults, in seconds. */
#define CIO_TLS_HANDSHAKE_TIMEOUT 60.0
#define CIO_TLS_SHUTDOWN_TIMEOUT  30.0

/**
 * A client context (asyncio: ssl.create_default_context()): verifies the
 * server's chain against @p cafile (a PEM bundle) or, when NULL, the
 * system's trust store, and its host name against the connection's
 * server_hostname; TLS 1.2 is the floor. Returns 0 and sets *@p out, or an
 * error: CIO_ETLSBADCA for a CA file that cannot be read, -ENOMEM.
 */
CIO_EXTERN int cio_tls_client_context(SSL_CTX **out, const char *cafile);

/**
 * A server context from @p certfile (PEM: the leaf first, then its chain)
 * and @p keyfile (PEM), with secure defaults: TLS 1.2 floor, no
 * renegotiation, no compression, the server's cipher preference, session
 * tickets and a session cache on. Returns 0 and sets *@p out, or an error:
 * the file's -errno when it cannot be opened, CIO_ETLSBADCERT,
 * CIO_ETLSBADKEY, CIO_ETLSKEYMISMATCH, -ENOMEM.
 */
CIO_EXTERN int cio_tls_server_context(SSL_CTX **out, const char *certfile, const char *keyfile);

/**
 * Ask clients of the server context @p ctx for a certificate signed by a CA
 * of @p cafile (PEM); @p required refuses a client that sends none (else it
 * is optional, and a client that sends a bad one is still refused). 0, the
 * file's -errno, CIO_ETLSBADCA, -EINVAL.
 */
CIO_EXTERN int cio_tls_context_verify_clients(SSL_CTX *ctx, const char *cafile, bool required);

/** Options of cio_loop_start_tls(); NULL or all-zero: asyncio's defaults. */
typedef struct cio_tls_opts {
    double handshake_timeout; /* seconds; 0: CIO_TLS_HANDSHAKE_TIMEOUT */
    double shutdown_timeout;  /* seconds; 0: CIO_TLS_SHUTDOWN_TIMEOUT */
    /*
     * Bytes of the TLS stream the caller has already read from the transport
     * (what followed "STARTTLS\r\n" in the same read, say): they are fed to
     * TLS before anything read later; they are copied, so a protocol may pass
     * a slice of the buffer data_received gave it. A coreio extension;
     * asyncio loses them (uvloop#707).
     */
    const void *initial_data;
    size_t initial_len;
    /* A client's session to resume (as cio_connection_opts_t's ssl_session). */
    SSL_SESSION *session;
} cio_tls_opts_t;

/**
 * Upgrade the plain stream transport @p t to TLS (asyncio: loop.start_tls):
 * from this call on, every byte @p t reads goes to TLS, none to its old
 * protocol; @p protocol gets connection_made once the handshake is done. A
 * client (@p server_side false) checks the server's name against
 * @p server_hostname (NULL: no name check, as asyncio's
 * check_hostname=False). The future's result is the transport: in C the
 * same object, now speaking TLS (asyncio returns a new one because Python
 * cannot change an object's class); it fails with the handshake's error,
 * and the transport is then closed. Writes made before the call are sent
 * in clear first, as in asyncio. NULL for bad arguments: not a stream
 * transport, already TLS, closing, or bad timeouts.
 */
CIO_EXTERN cio_future_t *cio_loop_start_tls(cio_loop_t *loop, cio_transport_t *t,
                                            cio_protocol_t *protocol, SSL_CTX *ctx,
                                            bool server_side, const char *server_hostname,
                                            const cio_tls_opts_t *opts);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_TLS_H */
