/*
 * coreio.h: the whole public API. coreio renders asyncio's low-level event loop
 * API in C; see docs/ and each header in coreio/ for one area.
 */
#ifndef COREIO_H
#define COREIO_H

#include "coreio/common.h"
#include "coreio/error.h"
#include "coreio/log.h"
#include "coreio/loop.h"
#include "coreio/future.h"
#include "coreio/policy.h"
#include "coreio/task.h"
#include "coreio/agen.h"
#include "coreio/net.h"
#include "coreio/transport.h"
#include "coreio/framing.h"
#include "coreio/server.h"
#include "coreio/proxy.h"
#include "coreio/connection.h"
#include "coreio/pipe.h"
#include "coreio/datagram.h"
#include "coreio/sock.h"
#include "coreio/executor.h"
#include "coreio/signal.h"
#include "coreio/subprocess.h"
#include "coreio/workers.h"
#include "coreio/sharded.h"
#include "coreio/config.h"
#include "coreio/service.h"
#include "coreio/app.h"
#include "coreio/module.h"
#include "coreio/metrics.h"

#endif /* COREIO_H */
