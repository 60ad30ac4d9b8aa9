/* list.h — an intrusive circular doubly-linked list with a sentinel head (libuv's queue, Linux's list_head): O(1) insert and remove, no allocation. */
#ifndef KZ_LIST_H
#define KZ_LIST_H

#include <stdbool.h>
#include <stddef.h>

/* Embedded in each element, and used alone as the list's head.  A node
 * that is in no list points at itself (kz_list_init, kz_list_remove), so
 * removing it twice is harmless. */
struct kz_list {
  struct kz_list *prev, *next;
};

static inline void kz_list_init(struct kz_list *l) { l->prev = l->next = l; }
static inline bool kz_list_empty(const struct kz_list *head) { return head->next == head; }
/* Links `l` just before `pos` (before the head: at the list's end). */
static inline void kz_list_insert_before(struct kz_list *pos, struct kz_list *l) {
  l->prev = pos->prev;
  l->next = pos;
  pos->prev->next = l;
  pos->prev = l;
}
static inline void kz_list_append(struct kz_list *head, struct kz_list *l) { kz_list_insert_before(head, l); }
static inline void kz_list_prepend(struct kz_list *head, struct kz_list *l) { kz_list_insert_before(head->next, l); }
/* Unlinks `l` and leaves it pointing at itself. */
static inline void kz_list_remove(struct kz_list *l) {
  l->prev->next = l->next;
  l->next->prev = l->prev;
  kz_list_init(l);
}
/* The first element's node, or NULL when the list is empty. */
static inline struct kz_list *kz_list_first(const struct kz_list *head) {
  return kz_list_empty(head) ? NULL : head->next;
}
/* Iterates `it` over the nodes of `head` in order.  The body must not
 * remove `it` (save it->next first, or use kz_list_first in a loop). */
#define KZ_LIST_FOREACH(it, head) for ((it) = (head)->next; (it) != (head); (it) = (it)->next)

#endif /* KZ_LIST_H */
