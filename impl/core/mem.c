/* mem.c — counting allocator with failure injection and reference-counted objects. */
#include "kz/mem.h"
#include "kz/error.h"

#include <assert.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Every block starts with this header.  The union pads it to a multiple
 * of max_align_t so the pointer handed out keeps malloc's alignment. */
union kz_mem_hdr {
  struct {
    size_t size;           /* user bytes */
    uint32_t magic;        /* KZ_MEM_MAGIC_PLAIN or KZ_MEM_MAGIC_OBJ */
    uint32_t refs;         /* objects only */
    kz_destructor_fn *dtor; /* objects only */
  } h;
  max_align_t align_;
};

#define KZ_MEM_MAGIC_PLAIN 0x6b7a6d31u /* "kzm1" */
#define KZ_MEM_MAGIC_OBJ 0x6b7a6f31u   /* "kzo1" */
#define KZ_MEM_MAGIC_DEAD 0xdeadb10cu

/* Largest block (header included) zeroed by memset after malloc; glibc's
 * per-thread cache serves requests up to 1032 bytes. */
#define KZ_MEM_SMALL 1024u

/* The only mutable file-scope state allowed in impl/ (allow-listed in
 * ci/guard.allow): process-wide allocation statistics for leak checks and
 * failure injection.  Atomic so a multi-threaded test runner stays sane. */
static _Atomic int64_t kz_mem_stat_live_blocks;
static _Atomic uint64_t kz_mem_stat_alloc_count;
static _Atomic int64_t kz_mem_stat_fail_countdown = -1;

/* True when failure injection says this allocation must fail. */
static int kz_mem_should_fail(void) {
  int64_t c = atomic_load(&kz_mem_stat_fail_countdown);
  while (c > 0 && !atomic_compare_exchange_weak(&kz_mem_stat_fail_countdown, &c, c - 1)) {
  }
  return c == 0;
}

static union kz_mem_hdr *hdr_of(const void *p) {
  return (union kz_mem_hdr *)((char *)(uintptr_t)p - sizeof(union kz_mem_hdr));
}

static void *block_alloc(size_t size, uint32_t magic, bool zero) {
  if (size > SIZE_MAX - sizeof(union kz_mem_hdr)) return NULL;
  if (kz_mem_should_fail()) return NULL;
  /* Small blocks: malloc then memset rather than calloc.  glibc's
   * calloc bypasses the per-thread cache and always takes the arena path
   * (~300 instructions for a small block against ~20), and zeroing the
   * few bytes asked for costs less than that.  Larger blocks never come
   * from that cache, and calloc leaves fresh pages from the system
   * untouched (they are zero already), so they keep calloc: zeroing them
   * here would make every such page resident.  Callers see the same
   * zeroed memory either way. */
  union kz_mem_hdr *hd;
  if (zero && sizeof(*hd) + size > KZ_MEM_SMALL) {
    hd = calloc(1, sizeof(*hd) + size);
  } else {
    hd = malloc(sizeof(*hd) + size);
    if (hd && zero) memset(hd + 1, 0, size);
  }
  if (!hd) return NULL;
  hd->h.size = size;
  hd->h.magic = magic;
  hd->h.refs = 0;
  hd->h.dtor = NULL;
  atomic_fetch_add(&kz_mem_stat_live_blocks, 1);
  atomic_fetch_add(&kz_mem_stat_alloc_count, 1);
  return hd + 1;
}

static void block_free(union kz_mem_hdr *hd) {
  hd->h.magic = KZ_MEM_MAGIC_DEAD;
  atomic_fetch_sub(&kz_mem_stat_live_blocks, 1);
  free(hd);
}

void *kz_malloc(size_t size) { return block_alloc(size, KZ_MEM_MAGIC_PLAIN, true); }

void *kz_calloc(size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) return NULL;
  return block_alloc(n * size, KZ_MEM_MAGIC_PLAIN, true);
}

void *kz_realloc(void *p, size_t size) {
  if (!p) return kz_malloc(size);
  union kz_mem_hdr *hd = hdr_of(p);
  assert(hd->h.magic == KZ_MEM_MAGIC_PLAIN && "kz_realloc on a non-kz_malloc block");
  if (size > SIZE_MAX - sizeof(union kz_mem_hdr)) return NULL;
  if (kz_mem_should_fail()) return NULL;
  size_t old = hd->h.size;
  union kz_mem_hdr *nh = realloc(hd, sizeof(*nh) + size);
  if (!nh) return NULL;
  if (size > old) memset((char *)(nh + 1) + old, 0, size - old);
  nh->h.size = size;
  /* Same block count; it is still one allocation done. */
  atomic_fetch_add(&kz_mem_stat_alloc_count, 1);
  return nh + 1;
}

void kz_free(void *p) {
  if (!p) return;
  union kz_mem_hdr *hd = hdr_of(p);
  assert(hd->h.magic == KZ_MEM_MAGIC_PLAIN && "kz_free on a non-kz_malloc block (objects use kz_deref)");
  block_free(hd);
}

char *kz_strndup(const char *s, size_t len) {
  size_t n = 0;
  while (n < len && s[n]) n++;
  char *d = kz_malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, s, n);
  d[n] = 0;
  return d;
}

char *kz_strdup(const char *s) { return kz_strndup(s, strlen(s)); }

int64_t kz_mem_live_blocks(void) { return atomic_load(&kz_mem_stat_live_blocks); }

uint64_t kz_mem_alloc_count(void) { return atomic_load(&kz_mem_stat_alloc_count); }

void kz_mem_fail_after(int64_t k) { atomic_store(&kz_mem_stat_fail_countdown, k < 0 ? -1 : k); }

static void *obj_alloc(size_t size, kz_destructor_fn *dtor, bool zero) {
  void *p = block_alloc(size, KZ_MEM_MAGIC_OBJ, zero);
  if (!p) return NULL;
  union kz_mem_hdr *hd = hdr_of(p);
  hd->h.refs = 1;
  hd->h.dtor = dtor;
  return p;
}

void *kz_obj_alloc(size_t size, kz_destructor_fn *dtor) { return obj_alloc(size, dtor, true); }

void *kz_obj_alloc_uninit(size_t size, kz_destructor_fn *dtor) {
  return obj_alloc(size, dtor, false);
}

void *kz_ref(void *obj) {
  if (!obj) return NULL;
  union kz_mem_hdr *hd = hdr_of(obj);
  assert(hd->h.magic == KZ_MEM_MAGIC_OBJ && "kz_ref on a non-object");
  assert(hd->h.refs > 0 && hd->h.refs < UINT32_MAX);
  hd->h.refs++;
  return obj;
}

void *kz_deref(void *obj) {
  if (!obj) return NULL;
  union kz_mem_hdr *hd = hdr_of(obj);
  assert(hd->h.magic == KZ_MEM_MAGIC_OBJ && "kz_deref on a non-object");
  assert(hd->h.refs > 0);
  if (--hd->h.refs > 0) return NULL;
  if (hd->h.dtor) hd->h.dtor(obj);
  /* A destructor must not resurrect the object. */
  assert(hd->h.refs == 0);
  block_free(hd);
  return NULL;
}

uint32_t kz_refcount(const void *obj) {
  if (!obj) return 0;
  const union kz_mem_hdr *hd = hdr_of(obj);
  assert(hd->h.magic == KZ_MEM_MAGIC_OBJ);
  return hd->h.refs;
}

int kz_array_reserve(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t ncap = *cap ? *cap : 8;
  while (ncap < need) {
    if (ncap > SIZE_MAX / 2 / elem) return KZ_ENOMEM;
    ncap *= 2;
  }
  void *p = kz_realloc(*arr, ncap * elem);
  if (!p) return KZ_ENOMEM;
  *arr = p;
  *cap = ncap;
  return 0;
}
