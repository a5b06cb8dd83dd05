/*
 * loop/dgram_read.c: how a datagram endpoint reads. One readiness event
 * takes every datagram waiting, up to BATCH, with one recvmmsg into the
 * loop's batch slots, and hands them to datagram_received in order. asyncio
 * reads one datagram per event; libuv reads up to 32. Under load this saves
 * a poll and a wake-up per datagram; with one datagram waiting it costs the
 * same single system call as recvfrom.
 *
 * A slot of 64 KiB holds any IP datagram (at most 65,527 bytes of payload).
 * A Unix endpoint, or a given socket of another family, whose datagrams can
 * be larger, reads one at a time into the loop's 256 KiB read buffer, as
 * asyncio does.
 *
 * The protocol may pause reading or close in the middle of a batch. After a
 * pause, the rest of the batch is copied into the endpoint's stash and
 * handed out first once reading resumes: resume_reading() makes the read
 * watch fire, so the stash goes out even if nothing new arrives. A close
 * drops the rest, as it drops what still waits in the socket.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "coreio/proxy.h"
#include "internal.h"

#define BATCH 16
#define SLOT (64 * 1024)

/* The loop's slots for one recvmmsg: lent to one endpoint's read at a time. */
struct cio__dgram_batch {
    int used; /* messages the last recvmmsg filled: their msg_namelen must be reset */
    struct mmsghdr msg[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_storage from[BATCH];
    uint8_t buf[BATCH][SLOT];
};

static const cio_protocol_ops_t *ops_of(const cio_transport_t *t)
{
    return t->protocol->ops;
}

void cio__dgram_report_error(cio_transport_t *t, int err)
{
    if (ops_of(t)->error_received) {
        int rc = ops_of(t)->error_received(t->protocol, err);
        if (rc < 0)
            cio__transport_fatal(t, rc, "protocol.error_received() call failed", true);
    }
}

/* datagram_received(@p buf[0..@p n)), after its PROXY header if the endpoint reads them. */
static inline void deliver(cio_transport_t *t, const uint8_t *buf, size_t n,
                           const struct sockaddr *from, socklen_t fromlen)
{
    cio_proxy_header_t h;
    ssize_t skip = t->dproxy ? cio__dgram_proxy_strip(t, from, fromlen, buf, n, &h) : 0;
    if (skip < 0 || !ops_of(t)->datagram_received)
        return;
    if (t->dproxy)
        cio__dgram_proxy_set_current(t, &h);
    int rc = ops_of(t)->datagram_received(t->protocol, buf + skip, n - (size_t)skip, from, fromlen);
    if (t->dproxy) /* the transport outlives the call, closed or not (its close is deferred) */
        cio__dgram_proxy_set_current(t, NULL);
    if (rc < 0)
        cio__transport_fatal(t, rc, "protocol.datagram_received() call failed", true);
}

static bool reading(const cio_transport_t *t)
{
    return !t->closing && !t->paused;
}

/* ---- the stash: what a pause left of a batch ----------------------------------- */

/*
 * Keep datagrams [@p first, @p n) of @p b as records (cio__dgram_record_t,
 * the address, the payload). Without the memory they are lost, and the
 * protocol hears -ENOMEM through error_received.
 */
static void stash_rest(cio_transport_t *t, const cio__dgram_batch_t *b, int first, int n)
{
    assert(!t->stash);
    size_t size = 0;
    for (int i = first; i < n; i++)
        size += sizeof(cio__dgram_record_t) + b->msg[i].msg_hdr.msg_namelen + b->msg[i].msg_len;
    uint8_t *p = malloc(size);
    if (!p) {
        cio__dgram_report_error(t, -ENOMEM);
        return;
    }
    t->stash = p;
    t->stash_head = 0;
    t->stash_len = size;
    for (int i = first; i < n; i++) {
        cio__dgram_record_t r = {.len = b->msg[i].msg_len, .addrlen = b->msg[i].msg_hdr.msg_namelen};
        memcpy(p, &r, sizeof(r));
        memcpy(p + sizeof(r), &b->from[i], r.addrlen);
        memcpy(p + sizeof(r) + r.addrlen, b->buf[i], r.len);
        p += sizeof(r) + r.addrlen + r.len;
    }
}

/* Hand out the stash until it is empty (true) or the protocol pauses or closes again. */
static bool deliver_stash(cio_transport_t *t)
{
    while (t->stash_len > 0 && reading(t)) {
        const uint8_t *p = t->stash + t->stash_head;
        cio__dgram_record_t r;
        struct sockaddr_storage from;
        memcpy(&r, p, sizeof(r));
        memcpy(&from, p + sizeof(r), r.addrlen);
        size_t size = sizeof(r) + r.addrlen + r.len;
        assert(size <= t->stash_len);
        t->stash_head += size;
        t->stash_len -= size;
        /* The stash outlives the call: only the transport's freeing frees it while not empty. */
        deliver(t, p + sizeof(r) + r.addrlen, r.len,
                r.addrlen ? (const struct sockaddr *)&from : NULL, r.addrlen);
    }
    if (t->stash_len > 0)
        return false;
    free(t->stash);
    t->stash = NULL;
    t->stash_head = 0;
    return true;
}

void cio__dgram_resumed(cio_transport_t *t)
{
    if (t->stash)
        cio__io_kick(t->loop, t->fd, t, CIO__IO_READ);
}

/* ---- reading ------------------------------------------------------------------- */

static cio__dgram_batch_t *batch_of(cio_loop_t *loop)
{
    cio__dgram_batch_t *b = loop->dgram_batch;
    if (b)
        return b;
    if (!(b = malloc(sizeof(*b))))
        return NULL;
    for (int i = 0; i < BATCH; i++) {
        b->iov[i] = (struct iovec){.iov_base = b->buf[i], .iov_len = SLOT};
        b->msg[i].msg_hdr = (struct msghdr){.msg_name = &b->from[i],
                                            .msg_namelen = sizeof(b->from[i]),
                                            .msg_iov = &b->iov[i],
                                            .msg_iovlen = 1};
    }
    b->used = 0;
    return loop->dgram_batch = b;
}

/* One recvmmsg: up to BATCH datagrams, delivered until a pause or close. */
static int read_batch(cio_transport_t *t)
{
    cio__dgram_batch_t *b = batch_of(t->loop);
    if (!b)
        return -ENOMEM;
    /* The kernel sets msg_namelen of the messages it fills, and only theirs. */
    for (int i = 0; i < b->used; i++)
        b->msg[i].msg_hdr.msg_namelen = sizeof(b->from[i]);
    int n = recvmmsg(t->fd, b->msg, BATCH, 0, NULL);
    b->used = n > 0 ? n : 0;
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            cio__dgram_report_error(t, -errno);
        return 0;
    }
    size_t in = 0;
    for (int i = 0; i < n; i++)
        in += b->msg[i].msg_len;
    cio__transport_traffic(t, in, 0);
    for (int i = 0; i < n && !t->closing; i++) {
        if (t->paused) {
            stash_rest(t, b, i, n);
            break;
        }
        socklen_t fromlen = b->msg[i].msg_hdr.msg_namelen;
        deliver(t, b->buf[i], b->msg[i].msg_len,
                fromlen ? (const struct sockaddr *)&b->from[i] : NULL, fromlen);
    }
    return 0;
}

/* A Unix (or other non-IP) endpoint: one datagram of up to 256 KiB. */
static int read_one(cio_transport_t *t)
{
    if (!t->loop->read_buf && !(t->loop->read_buf = malloc(CIO__READ_BUF_SIZE)))
        return -ENOMEM;
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof(from);
    ssize_t n = recvfrom(t->fd, t->loop->read_buf, CIO__READ_BUF_SIZE, 0, (struct sockaddr *)&from,
                         &fromlen);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            cio__dgram_report_error(t, -errno);
        return 0;
    }
    cio__transport_traffic(t, (size_t)n, 0);
    deliver(t, t->loop->read_buf, (size_t)n, fromlen ? (struct sockaddr *)&from : NULL, fromlen);
    return 0;
}

int cio__dgram_on_readable(void *arg)
{
    cio_transport_t *t = arg;
    if (t->stash && !deliver_stash(t))
        return 0;
    if (!reading(t))
        return 0;
    return t->dgram_one ? read_one(t) : read_batch(t);
}
