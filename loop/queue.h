/*
 * loop/queue.h: an intrusive circular doubly linked list. Embed a
 * cio__queue_t in a struct and get back to the struct with cio_container_of.
 */
#ifndef CIO_LOOP_QUEUE_H
#define CIO_LOOP_QUEUE_H

#include <stdbool.h>

typedef struct cio__queue {
    struct cio__queue *next;
    struct cio__queue *prev;
} cio__queue_t;

static inline void cio__queue_init(cio__queue_t *q)
{
    q->next = q;
    q->prev = q;
}

static inline bool cio__queue_empty(const cio__queue_t *q)
{
    return q->next == q;
}

/* Append @p node at the end of the list headed by @p head. */
static inline void cio__queue_insert_tail(cio__queue_t *head, cio__queue_t *node)
{
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

/* Unlink @p node; it stays valid as an empty list of its own. */
static inline void cio__queue_remove(cio__queue_t *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    cio__queue_init(node);
}

#define cio__queue_foreach(pos, head)                                                              \
    for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

#endif /* CIO_LOOP_QUEUE_H */
