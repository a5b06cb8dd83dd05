/*
 * workers/home.c: a calling loop's home (see internal.h), shared by the files
 * that send calls to other loops and settle their futures when the answers
 * come back: submit.c's jobs and shard_call.c's batches.
 *
 * A call's future belongs to the caller's loop and may only be touched on
 * that loop's thread, while its answer comes back from another thread, maybe
 * after the caller's loop has closed. So the caller keeps the futures it
 * waits for in its home, and the home hangs on the loop's mailbox port, where
 * the answers are posted: when the loop closes, port_close() (loop/mailbox.c)
 * first makes every later post through the port fail and waits for the posts
 * under way, then calls the home's close hook on the closing thread, which
 * cancels and lets go of the futures still waiting. An answer that comes
 * back later finds the port closed and is dropped by its sender, without
 * touching anything of the caller's but the port.
 *
 * Nothing here is atomic: the home is made and used on the loop's thread, and
 * the close hook runs on the thread closing the loop, which is that thread or
 * one that took the loop over once it stopped running (cio_workers_free()
 * joins a worker's thread before closing its loop), so each use of the home
 * happens before the next.
 */
#include <stdlib.h>

#include "internal.h"

/* On the closing thread: each part lets go of its calls, then the home goes. */
static void home_closed(void *arg)
{
    cio__home_t *h = arg;
    for (int s = 0; s < CIO__HOME_SLOTS; s++)
        if (h->part[s])
            h->part[s]->closed(h->part[s]);
    cio__mailbox_port_unref(h->port);
    free(h);
}

/*
 * The running loop @p loop's home, made on first use; NULL when out of memory
 * or once the loop is closing. Loop thread only.
 */
cio__home_t *cio__home_get(cio_loop_t *loop)
{
    cio__home_t *h = cio__mailbox_attached(loop);
    if (h)
        return h;
    if (!(h = calloc(1, sizeof(*h))))
        return NULL;
    if (cio__mailbox_port(loop, &h->port) < 0) {
        free(h);
        return NULL;
    }
    cio__mailbox_port_attach(h->port, h, home_closed);
    return h;
}

/*
 * Give @p h the part in @p slot, which was empty: @p closed(@p part) will end it
 * when the loop closes (and must free it). Loop thread only.
 */
void cio__home_add(cio__home_t *h, enum cio__home_slot slot, cio__home_part_t *part,
                   void (*closed)(cio__home_part_t *part))
{
    part->home = h;
    part->closed = closed;
    h->part[slot] = part;
}
