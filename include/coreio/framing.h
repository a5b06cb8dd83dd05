/*
 * coreio/framing.h: cutting a stream protocol's bytes into frames, the two
 * common ways: lines ended by a delimiter (asyncio: StreamReader.readline /
 * readuntil, libevent: evbuffer_readln) and frames after a big-endian length
 * header. A frame longer than the framer's limit is an error,
 * CIO_EFRAMETOOLONG (asyncio's LimitOverrunError), found as soon as the
 * bytes at hand prove it, so a peer cannot make the framer buffer more than
 * one frame's worth.
 *
 * A framer is a plain struct the protocol embeds (no allocation while idle),
 * fed from data_received; it calls back once per complete frame:
 *
 *     static int my_data(cio_protocol_t *p, const void *data, size_t len)
 *     {
 *         my_proto_t *m = (my_proto_t *)p;
 *         return cio_framer_feed(&m->framer, data, len, my_on_frame, m);
 *     }
 *
 * A negative return from data_received closes the transport with that error
 * and hands it to connection_lost (after the loop's exception handler has
 * heard of it); a positive one, a stop asked for by the frame callback, is
 * ignored by the transport.
 *
 * Pausing: a protocol that calls cio_transport_pause_reading() in its frame
 * callback returns a positive value from it. Feeding stops, the bytes not yet
 * delivered stay in the framer, and after cio_transport_resume_reading() a
 * cio_framer_feed(f, NULL, 0, ...) delivers them, in order, before any byte
 * read later (it may stop again). An error there comes outside data_received:
 * the protocol closes the transport itself (cio_transport_abort()).
 *
 * The frame callback runs inside cio_framer_feed(), not scheduled: it is the
 * caller's own parsing step, and a frame lying in the bytes fed is valid only
 * while they are.
 *
 * A framer serves one connection and is not thread-safe; it uses no loop, so
 * any thread may use it, one at a time. cio_framer_write() is loop thread only.
 */
#ifndef COREIO_FRAMING_H
#define COREIO_FRAMING_H

#include "coreio/common.h"
#include "coreio/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/** How a stream is cut into frames. */
typedef enum cio_framing {
    CIO_FRAME_LINES = 0, /* each frame ends with a delimiter, which it excludes */
    CIO_FRAME_LENGTH,    /* each frame starts with its length, big-endian unsigned */
} cio_framing_t;

/** Largest delimiter of CIO_FRAME_LINES, in bytes. */
#define CIO_FRAMER_DELIMITER_MAX 8

/** Default max_frame: 64 KiB, asyncio's StreamReader limit. */
#define CIO_FRAMER_DEFAULT_MAX ((size_t)64 * 1024)

/** Options of cio_framer_init(); NULL or all-zero: lines ended by "\n", 64 KiB at most. */
typedef struct cio_framer_opts {
    cio_framing_t kind;
    /* LINES: 1 to 8 bytes, copied; NULL (with delimiter_len 0) means "\n". */
    const char *delimiter;
    size_t delimiter_len;
    /* LENGTH: header size, 1, 2, 4 or 8 bytes; 0 means 4. */
    unsigned length_size;
    /* LENGTH: the header's value counts the header too (it is then at least length_size). */
    bool length_includes_header;
    /* Longest frame accepted, header and delimiter excluded; 0 means 64 KiB. */
    size_t max_frame;
} cio_framer_opts_t;

/**
 * A framer. The fields are private: read and change it only through the
 * functions below. Embed it in the protocol, set it up with cio_framer_init()
 * and free what it holds with cio_framer_clear().
 */
typedef struct cio_framer {
    size_t max_frame;
    uint8_t kind;
    uint8_t delim_len;
    uint8_t length_size;
    bool includes_header;
    bool whole_frames; /* the buffer may hold complete frames, kept by a stop */
    bool busy;         /* inside the frame callback */
    int error;         /* a framing error or -ENOMEM: the stream is lost */
    unsigned char delim[CIO_FRAMER_DELIMITER_MAX];
    unsigned char *buf; /* bytes kept between feeds; NULL when none */
    size_t len;
    size_t cap;
} cio_framer_t;

/**
 * Called once per complete frame, @p len bytes at @p frame (never NULL, also
 * for an empty frame), valid during the call only: a frame that lay whole in
 * the bytes fed is not copied. Return 0 to go on; anything else stops
 * feeding, and cio_framer_feed() returns it. The callback must not feed or
 * clear its own framer (asserted); it may call cio_framer_write() and
 * cio_framer_pending().
 */
typedef int (*cio_frame_cb)(void *arg, const void *frame, size_t len);

/**
 * Set up @p f from @p opts (NULL: the defaults). Returns 0, or -EINVAL for an
 * unknown kind, a delimiter of 0 or more than 8 bytes, a length size other
 * than 0, 1, 2, 4 or 8, the other kind's options set, or a max_frame above
 * SIZE_MAX / 2. Holds no memory until bytes must be kept.
 */
CIO_EXTERN int cio_framer_init(cio_framer_t *f, const cio_framer_opts_t *opts);

/**
 * Feed @p len bytes (the next of the stream) to @p f and call @p on_frame
 * with each frame completed, in order. Only an incomplete frame is copied: a
 * line, at most max_frame + delimiter_len - 1 bytes; a length frame, at most
 * its header and max_frame bytes; the copy is freed when delivered. A stop
 * keeps the rest of @p data, however long, until a later feed delivers it
 * (@p data NULL and @p len 0 delivers only what is kept).
 *
 * Returns 0 once every complete frame is delivered; the non-zero value
 * @p on_frame returned (the bytes after that frame are kept); or an error
 * after which the stream cannot be framed any more and every later feed
 * returns it again: CIO_EFRAMETOOLONG for a frame longer than max_frame (a
 * line as soon as max_frame + delimiter_len bytes have come without a
 * delimiter, or its delimiter starts past max_frame; a length frame as soon
 * as its header has come), -EPROTO for a length below the header's own size
 * when it counts itself, -ENOMEM when bytes could not be kept. -EINVAL for
 * NULL @p f or @p on_frame, or NULL @p data with a length; -EBUSY when called
 * from @p on_frame with asserts off.
 */
CIO_EXTERN int cio_framer_feed(cio_framer_t *f, const void *data, size_t len, cio_frame_cb on_frame,
                               void *arg);

/**
 * Bytes fed but not yet delivered: an incomplete frame (in eof_received: a
 * truncated last frame), and after a stop the frames not delivered yet. 0
 * after an error.
 */
CIO_EXTERN size_t cio_framer_pending(const cio_framer_t *f);

/**
 * Free the bytes @p f holds and forget them, and any error: @p f is as
 * cio_framer_init() left it. NULL is a no-op. Not from the frame callback.
 */
CIO_EXTERN void cio_framer_clear(cio_framer_t *f);

/**
 * Send @p len bytes at @p data as one frame in @p f's format over @p t, all
 * or nothing, as one write: the length header then the bytes, or the bytes
 * then the delimiter. Returns 0; CIO_EFRAMETOOLONG when @p len is above
 * max_frame or its header cannot hold it; -EINVAL for a line the delimiter
 * would end early (one holding it, or ending so that it and the delimiter
 * hold it earlier) or bad arguments; else what cio_transport_writelines()
 * returns (-EPIPE, -ENOMEM). Loop thread only.
 */
CIO_EXTERN int cio_framer_write(const cio_framer_t *f, cio_transport_t *t, const void *data,
                                size_t len);

#ifdef __cplusplus
}
#endif

#endif /* COREIO_FRAMING_H */
