/*
 * coreio/signal.h: Unix signal handlers on event loops (asyncio:
 * loop.add_signal_handler). The process catches the signal in one place and
 * the callback runs on the loop that registered it, as a normal callback,
 * however many threads the process has. coreio's pool threads block every
 * signal.
 */
#ifndef COREIO_SIGNAL_H
#define COREIO_SIGNAL_H

#include "coreio/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Call @p cb(@p arg) on @p loop whenever signal @p sig arrives, replacing
 * this loop's earlier handler for it (asyncio: add_signal_handler). Several
 * loops may handle one signal: each gets its callback. Returns 0, -EINVAL for
 * an invalid signal number or one that cannot be caught (SIGKILL, SIGSTOP) or
 * a NULL callback, CIO_ECLOSED, -ENOMEM, or -EAGAIN if the dispatching thread
 * cannot start. Loop thread only.
 */
CIO_EXTERN int cio_loop_add_signal_handler(cio_loop_t *loop, int sig, cio_callback_t cb, void *arg);

/**
 * Remove this loop's handler for @p sig (asyncio: remove_signal_handler):
 * 1 if there was one, 0 if not, -EINVAL for an invalid signal. When no loop
 * handles @p sig any more its default disposition is restored. Loop thread
 * only.
 */
CIO_EXTERN int cio_loop_remove_signal_handler(cio_loop_t *loop, int sig);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_SIGNAL_H */
