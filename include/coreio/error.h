/*
 * coreio/error.h: error codes. Every coreio call that can fail returns 0 or a
 * negative error: a negated errno value (-EINVAL) or one of coreio's own codes
 * below, all under -4000.
 */
#ifndef COREIO_ERROR_H
#define COREIO_ERROR_H

#include "coreio/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * coreio's own error codes: X(NAME, value, message). The table generates the
 * enum, cio_strerror() and cio_err_name(); values are stable. Name lookups
 * fail with CIO_EAI_* (asyncio's socket.gaierror), except that EAI_MEMORY is
 * -ENOMEM and EAI_SYSTEM the errno value it stands for.
 */
#define CIO_ERRNO_MAP(X)                                                                           \
    X(CLOSED, -4001, "event loop is closed")                                                       \
    X(RUNNING, -4002, "this event loop is already running")                                        \
    X(OTHERLOOP, -4003, "another event loop is running in this thread")                            \
    X(NOLOOP, -4004, "no running event loop")                                                      \
    X(STOPPED, -4005, "event loop stopped before the future completed")                            \
    X(INVALIDSTATE, -4006, "invalid state for this future operation")                              \
    X(WRONGTHREAD, -4007, "non-thread-safe call from a thread other than the loop's")              \
    X(NOPOLICYLOOP, -4008, "no current event loop in this thread")                                 \
    X(BACKEND, -4009, "the I/O backend (libevent) failed")                                         \
    X(NOTASK, -4010, "not inside a task")                                                          \
    X(STOPASYNCITERATION, -4011, "async generator is exhausted")                                   \
    X(GENERATOREXIT, -4012, "async generator is being closed")                                     \
    X(AGENRUNNING, -4013, "async generator is already running")                                    \
    X(NOSENDFILE, -4014, "sendfile not available")                                                 \
    X(FRAMETOOLONG, -4015, "frame longer than the framer's max_frame")                             \
    /* TLS (coreio/tls.h): handshakes, verification, the end of a connection, contexts. */         \
    X(TLS, -4201, "TLS protocol error")                                                            \
    X(TLSHANDSHAKETIMEOUT, -4202, "TLS handshake timeout")                                         \
    X(TLSSHUTDOWNTIMEOUT, -4203, "TLS shutdown timeout")                                           \
    X(TLSTRUNCATED, -4204, "TLS connection truncated: EOF without close_notify")                   \
    X(TLSNOTTLS, -4205, "TLS handshake failed: the peer does not speak TLS")                       \
    X(TLSVERSION, -4206, "TLS handshake failed: no protocol version in common")                    \
    X(TLSNOCIPHER, -4207, "TLS handshake failed: no cipher in common")                             \
    X(TLSALERT, -4208, "TLS: the peer sent a fatal alert")                                         \
    X(TLSRENEGOTIATION, -4209, "TLS: renegotiation refused")                                       \
    X(TLSVERIFY, -4210, "certificate verify failed")                                               \
    X(TLSHOSTNAME, -4211, "certificate verify failed: host name mismatch")                         \
    X(TLSEXPIRED, -4212, "certificate verify failed: certificate has expired")                     \
    X(TLSNOTYETVALID, -4213, "certificate verify failed: certificate is not yet valid")            \
    X(TLSUNKNOWNCA, -4214, "certificate verify failed: unable to get local issuer certificate")    \
    X(TLSSELFSIGNED, -4215, "certificate verify failed: self-signed certificate")                  \
    X(TLSNOPEERCERT, -4216, "certificate verify failed: the peer sent no certificate")             \
    X(TLSBADCERT, -4221, "cannot read the certificate (PEM expected)")                             \
    X(TLSBADKEY, -4222, "cannot read the private key (PEM expected)")                              \
    X(TLSKEYMISMATCH, -4223, "the private key does not match the certificate")                     \
    X(TLSBADCA, -4224, "cannot read the CA certificates (PEM expected)")                           \
    /* The PROXY protocol (coreio/proxy.h): a balancer's header before the connection. */         \
    X(PROXY, -4301, "malformed PROXY protocol header")                                             \
    X(PROXYVERSION, -4302, "PROXY protocol header of a version not accepted")                      \
    X(PROXYMISSING, -4303, "no PROXY protocol header")                                             \
    X(PROXYUNTRUSTED, -4304, "PROXY protocol peer not trusted")                                    \
    X(PROXYTIMEOUT, -4305, "PROXY protocol header timeout")                                        \
    /* Name lookup (getaddrinfo, getnameinfo) failures, EAI_* with gai_strerror's text. */         \
    X(AI_BADFLAGS, -4101, "Bad value for ai_flags")                                                \
    X(AI_NONAME, -4102, "Name or service not known")                                               \
    X(AI_AGAIN, -4103, "Temporary failure in name resolution")                                     \
    X(AI_FAIL, -4104, "Non-recoverable failure in name resolution")                                \
    X(AI_NODATA, -4105, "No address associated with hostname")                                     \
    X(AI_FAMILY, -4106, "ai_family not supported")                                                 \
    X(AI_SOCKTYPE, -4107, "ai_socktype not supported")                                             \
    X(AI_SERVICE, -4108, "Servname not supported for ai_socktype")                                 \
    X(AI_ADDRFAMILY, -4109, "Address family for hostname not supported")                           \
    X(AI_OVERFLOW, -4112, "Argument buffer overflow")                                              \
    X(AI_IDN_ENCODE, -4113, "Parameter string not correctly encoded")

/** coreio's own error codes (all negative, below -4000). */
enum cio_errno {
#define CIO__ERRNO_ENUM(name, value, msg) CIO_E##name = (value),
    CIO_ERRNO_MAP(CIO__ERRNO_ENUM)
#undef CIO__ERRNO_ENUM
};

/**
 * Describe an error code: coreio's own codes, or a negated errno value (the
 * system's message). Returns a static string, never NULL. Any thread.
 */
CIO_EXTERN const char *cio_strerror(int err);

/**
 * Name an error code: "CIO_ECLOSED", "ECONNRESET", "0" for success, or
 * "unknown" when the value is neither. Returns a static string. Any thread.
 */
CIO_EXTERN const char *cio_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_ERROR_H */
