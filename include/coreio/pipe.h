/*
 * coreio/pipe.h: pipe transports (asyncio: loop.connect_read_pipe and
 * loop.connect_write_pipe). A pipe transport is a stream transport over one
 * end of a pipe, a FIFO or a character device such as a terminal; the
 * descriptor is made non-blocking and owned by the transport, which closes
 * it. get_extra_info("pipe") gives its descriptor (in info.fd).
 *
 * Read pipe transports (asyncio's ReadTransport): data_received, then at the
 * end of the stream eof_received (its return value ignored: a read pipe has
 * no write side to keep) and connection_lost(0); pause_reading and
 * resume_reading; write() fails with -EINVAL.
 *
 * Write pipe transports (asyncio's WriteTransport): write and writelines
 * with the water marks and pause_writing/resume_writing, write_eof (closes
 * the pipe once the buffer has drained: a pipe has no half-close, so this is
 * close()), can_write_eof true, abort. The reading end going away is noticed
 * even while nothing is written: connection_lost(0), or -EPIPE if bytes were
 * still waiting. Writes never raise SIGPIPE: unless the process ignores
 * SIGPIPE, a write blocks it in the calling thread around write(2) and
 * discards the one it caused (two more system calls per write).
 *
 * Loop thread only.
 */
#ifndef COREIO_PIPE_H
#define COREIO_PIPE_H

#include "coreio/common.h"
#include "coreio/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Wrap @p fd, the read end of a pipe (or a FIFO, a terminal...), in a read
 * pipe transport with a protocol from @p factory(@p factory_arg) (asyncio:
 * connect_read_pipe). The future's result is the transport, once
 * connection_made has run. NULL for bad arguments (no loop or factory, a
 * negative descriptor, one that cannot be made non-blocking, a closed loop)
 * or no memory; the descriptor is then left to the caller.
 */
CIO_EXTERN cio_future_t *cio_loop_connect_read_pipe(cio_loop_t *loop,
                                                    cio_protocol_factory_t factory,
                                                    void *factory_arg, int fd);

/** As cio_loop_connect_read_pipe(), for the write end: a write pipe transport. */
CIO_EXTERN cio_future_t *cio_loop_connect_write_pipe(cio_loop_t *loop,
                                                     cio_protocol_factory_t factory,
                                                     void *factory_arg, int fd);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_PIPE_H */
