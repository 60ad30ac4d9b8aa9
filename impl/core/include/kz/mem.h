/* kz/mem.h — counted allocation with failure injection, and reference-counted objects. */
#ifndef KZ_MEM_H
#define KZ_MEM_H

#include <stddef.h>
#include <stdint.h>

/* All kz allocations go through these wrappers so tests can count live
 * blocks (leak checks around every test) and make the k-th allocation
 * fail (allocation-failure sweeps, as nghttp2's failmalloc does).
 * kz_malloc and kz_calloc return zeroed memory; all return NULL on
 * failure.  kz_free(NULL) is a no-op. */
void *kz_malloc(size_t size);
void *kz_calloc(size_t n, size_t size);
/* Grows or shrinks a kz_malloc'ed block; bytes past the old size are
 * zeroed.  NULL p is kz_malloc(size). */
void *kz_realloc(void *p, size_t size);
void kz_free(void *p);
char *kz_strndup(const char *s, size_t len);
char *kz_strdup(const char *s);

/* Grows a kz_malloc'ed array *arr of *cap elements of `elem` bytes so it
 * holds at least `need` (doubling, from 8).  New room is zeroed (it
 * grows through kz_realloc).  Returns 0 or KZ_ENOMEM (*arr and *cap
 * unchanged). */
int kz_array_reserve(void **arr, size_t *cap, size_t need, size_t elem);

/* Live block count and the number of allocations done so far. */
int64_t kz_mem_live_blocks(void);
uint64_t kz_mem_alloc_count(void);

/* Make allocation number `k` from now (0 = the next one) and every one
 * after it fail; a negative k turns failure injection off. */
void kz_mem_fail_after(int64_t k);

/* Reference-counted objects (libre's mem_zalloc/mem_ref/mem_deref).
 * kz_obj_alloc returns zeroed memory with a reference count of 1 and an
 * optional destructor that runs when the count reaches zero, before the
 * memory is freed.  kz_deref always returns NULL so `p = kz_deref(p);`
 * is the idiom; kz_deref(NULL) is a no-op. */
typedef void kz_destructor_fn(void *obj);

void *kz_obj_alloc(size_t size, kz_destructor_fn *dtor);
/* Like kz_obj_alloc but the `size` bytes are NOT zeroed: for large
 * objects whose constructor writes every byte it will ever read (a parsed
 * message's inline arrays, filled element by element), where zeroing
 * kilobytes per object costs more than the work done with them.  Same
 * counting, failure injection, reference count and destructor. */
void *kz_obj_alloc_uninit(size_t size, kz_destructor_fn *dtor);
void *kz_ref(void *obj);
void *kz_deref(void *obj);
uint32_t kz_refcount(const void *obj);

#endif /* KZ_MEM_H */
