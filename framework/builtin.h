/*
 * framework/builtin.h: the services coreio registers itself ("echo",
 * "discard", "http-hello"). Each is a protocol implementation behind a
 * cio_service_t descriptor; the framework opens them on every worker like any
 * user service. Internal: the library hides these symbols.
 */
#ifndef CIO_FRAMEWORK_BUILTIN_H
#define CIO_FRAMEWORK_BUILTIN_H

#include "coreio/service.h"

/* "echo" (RFC 862), streams and datagrams: every byte goes back to its sender. */
extern const cio_service_t cio__service_echo;

/* "discard" (RFC 863), streams and datagrams: everything received is dropped. */
extern const cio_service_t cio__service_discard;

/*
 * "http-hello", streams only: answers every HTTP/1.x request with 200 and
 * "Hello, World!\n", with keep-alive and pipelining. Its worker state holds
 * the cached responses (rebuilt once a second for the Date header) and the
 * output buffer its connections share.
 */
extern const cio_service_t cio__service_http_hello;

#endif /* CIO_FRAMEWORK_BUILTIN_H */
