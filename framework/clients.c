/*
 * framework/clients.c: the clients of a small listener of the app's own (the
 * admin and agent listeners, and the stats service), kept oldest first with
 * a deadline each. A client past its deadline is aborted, and when the list
 * is full the oldest goes to make room: a slow or idle client, or a flood of
 * them, never holds the loop's descriptors, and a fresh client is always
 * answered.
 */
#include "internal.h"

static void unlink_client(cio__client_t *c)
{
    cio__clients_t *l = c->list;
    *(c->prev ? &c->prev->next : &l->head) = c->next;
    *(c->next ? &c->next->prev : &l->tail) = c->prev;
    l->n--;
    c->list = NULL;
}

static int expired(void *arg)
{
    cio__client_t *c = arg;
    c->deadline = (cio_handle_t){0};
    unlink_client(c);
    cio_transport_abort(c->t);
    return 0;
}

int cio__clients_add(cio__clients_t *l, cio__client_t *c, cio_transport_t *t, size_t max,
                     double timeout)
{
    if (l->n >= max) {
        cio__client_t *oldest = l->head;
        cio__clients_remove(oldest);
        cio_transport_abort(oldest->t);
    }
    *c = (cio__client_t){.t = t, .list = l, .prev = l->tail};
    *(l->tail ? &l->tail->next : &l->head) = c;
    l->tail = c;
    l->n++;
    return cio_loop_call_later(cio_transport_get_loop(t), timeout, expired, c, &c->deadline);
}

void cio__clients_remove(cio__client_t *c)
{
    cio_handle_cancel(c->deadline);
    c->deadline = (cio_handle_t){0};
    if (c->list)
        unlink_client(c);
}
