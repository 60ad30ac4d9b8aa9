/* storage.c — per-host in-memory file systems with a current and a synced image per file, reverted on crash. */
#include <string.h>

#include "kz/bytes.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "sim_internal.h"

/* Durability model (documented in kz/sim.h):
 *  - writes and truncates change the current image only;
 *  - kz_file_sync copies current -> synced and makes the file durable;
 *  - rename and remove change the name table at once, durably (a rename
 *    moves both images, like a journaled directory update);
 *  - a crash reverts every file to its synced image and drops files that
 *    were never synced (KZ_SIM_CRASH_REVERT), or, in KZ_SIM_CRASH_TORN
 *    mode, may instead keep a prefix of the unsynced writes, replayed
 *    from the write log kept since the last sync.
 * Files are reference-counted: an open handle keeps a removed or
 * replaced file alive (POSIX unlink semantics) until it is closed. */

static void file_dtor(void *obj) {
  struct sim_file *f = obj;
  kz_buf_free(&f->cur);
  kz_buf_free(&f->synced);
  kz_buf_free(&f->wlog);
}

/* Appends a record to the write log: 'W' (offset, bytes) or 'T' (new
 * size).  Returns 0 or KZ_ENOMEM. */
static int wlog_add(struct sim_file *f, uint8_t type, uint64_t off, const void *data, size_t len) {
  uint8_t h[17];
  h[0] = type;
  for (int i = 0; i < 8; i++) {
    h[1 + i] = (uint8_t)(off >> (56 - 8 * i));
    h[9 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
  }
  size_t before = f->wlog.len;
  if (kz_buf_append(&f->wlog, h, sizeof h) != 0 || kz_buf_append(&f->wlog, data, len) != 0) {
    f->wlog.len = before;
    return KZ_ENOMEM;
  }
  return 0;
}

/* "<proc>/<path>" into out; the core has validated `path`. */
static int full_path(const struct kz_sim_proc *p, const char *path, char *out, size_t outlen) {
  int n = snprintf(out, outlen, "%s/%s", p->name, path);
  return (n < 0 || (size_t)n >= outlen) ? KZ_EINVAL : 0;
}

static void trace_fs(struct kz_sim_proc *p, const char *ev, const char *path) {
  struct kz_sim *sim = p->host->sim;
  kz_sim_tr_begin(sim, ev);
  kz_sim_tr_who(sim, p->host, p);
  kz_sim_tr_str(sim, "path", path);
}

static struct sim_fh *fh_of(struct kz_file *f) { return f->impl; }

static int buf_resize(struct kz_buf *b, uint64_t size) {
  if (size > SIZE_MAX / 2) return KZ_ENOSPC;
  if (size > b->len) {
    size_t extra = (size_t)size - b->len;
    if (kz_buf_reserve(b, extra) != 0) return KZ_ENOMEM;
    memset(b->data + b->len, 0, extra); /* holes read as zero */
  }
  b->len = (size_t)size;
  if (b->cap) b->data[b->len] = 0;
  return 0;
}

int kz_sim_fs_open(struct kz_sim_proc *p, struct kz_file *f, const char *path, int flags) {
  struct kz_sim_host *h = p->host;
  char full[256];
  if (full_path(p, path, full, sizeof full)) return KZ_EINVAL;
  struct sim_fh *fh = kz_calloc(1, sizeof *fh);
  if (!fh) return KZ_ENOMEM;
  struct sim_file *file = kz_map_get_str(&h->files, full);
  if (file) {
    if ((flags & KZ_FILE_CREATE) && (flags & KZ_FILE_EXCL)) {
      kz_free(fh);
      return KZ_EEXIST;
    }
    kz_ref(file);
  } else {
    if (!(flags & KZ_FILE_CREATE)) {
      kz_free(fh);
      return KZ_ENOENT;
    }
    file = kz_obj_alloc(sizeof *file, file_dtor);
    if (!file || kz_map_put_str(&h->files, full, file, NULL) != 0) {
      kz_deref(file);
      kz_free(fh);
      return KZ_ENOMEM;
    }
    kz_ref(file); /* one for the name table, one for the handle */
  }
  if ((flags & KZ_FILE_TRUNC) && (flags & KZ_FILE_WRITE)) {
    if (wlog_add(file, 'T', 0, NULL, 0) != 0) {
      kz_deref(file);
      kz_free(fh);
      return KZ_ENOMEM;
    }
    kz_buf_reset(&file->cur);
  }
  fh->file = file;
  fh->f = kz_ref(f);
  fh->proc = p;
  fh->flags = flags;
  memcpy(fh->path, full, strlen(full) + 1);
  fh->next = p->files;
  if (p->files) p->files->prev = fh;
  p->files = fh;
  f->impl = fh;
  return 0;
}

int kz_sim_fs_read(struct kz_sim_proc *p, struct kz_file *f, uint64_t off, void *buf, size_t len,
            size_t *nread) {
  (void)p;
  struct sim_file *file = fh_of(f)->file;
  if (!(fh_of(f)->flags & KZ_FILE_READ)) return KZ_EINVAL;
  size_t n = 0;
  if (off < file->cur.len) {
    n = file->cur.len - (size_t)off;
    if (n > len) n = len;
    memcpy(buf, file->cur.data + off, n);
  }
  *nread = n;
  return 0;
}

int kz_sim_fs_write(struct kz_sim_proc *p, struct kz_file *f, uint64_t off, const void *buf, size_t len) {
  (void)p;
  struct sim_file *file = fh_of(f)->file;
  if (!(fh_of(f)->flags & KZ_FILE_WRITE)) return KZ_EINVAL;
  if (off > SIZE_MAX / 2 || len > SIZE_MAX / 2) return KZ_ENOSPC;
  uint64_t end = off + len;
  if (end > file->cur.len) {
    int rc = buf_resize(&file->cur, end);
    if (rc) return rc;
  }
  if (wlog_add(file, 'W', off, buf, len) != 0) return KZ_ENOMEM;
  if (len) memcpy(file->cur.data + off, buf, len);
  return 0;
}

int kz_sim_fs_size(struct kz_sim_proc *p, struct kz_file *f, uint64_t *size) {
  (void)p;
  *size = fh_of(f)->file->cur.len;
  return 0;
}

int kz_sim_fs_truncate(struct kz_sim_proc *p, struct kz_file *f, uint64_t size) {
  (void)p;
  if (!(fh_of(f)->flags & KZ_FILE_WRITE)) return KZ_EINVAL;
  struct sim_file *file = fh_of(f)->file;
  if (wlog_add(file, 'T', size, NULL, 0) != 0) return KZ_ENOMEM;
  return buf_resize(&file->cur, size);
}

int kz_sim_fs_sync(struct kz_sim_proc *p, struct kz_file *f) {
  struct sim_fh *fh = fh_of(f);
  struct sim_file *file = fh->file;
  if (p->host->crashing) return KZ_EIO; /* a dying process syncs nothing */
  kz_buf_reset(&file->synced);
  if (kz_buf_append(&file->synced, file->cur.data, file->cur.len) != 0) return KZ_EIO;
  file->durable = true;
  kz_buf_reset(&file->wlog);
  trace_fs(p, "fsync", fh->path);
  kz_sim_tr_payload(p->host->sim, file->cur.data, file->cur.len);
  kz_sim_tr_end(p->host->sim);
  return 0;
}

void kz_sim_fs_close(struct kz_sim_proc *p, struct kz_file *f) {
  struct sim_fh *fh = fh_of(f);
  if (fh->prev) fh->prev->next = fh->next;
  else p->files = fh->next;
  if (fh->next) fh->next->prev = fh->prev;
  kz_deref(fh->file);
  f->impl = NULL;
  kz_free(fh);
  kz_deref(f); /* the driver's reference */
}

int kz_sim_fs_rename(struct kz_sim_proc *p, const char *from, const char *to) {
  struct kz_sim_host *h = p->host;
  char a[256], b[256];
  if (full_path(p, from, a, sizeof a) || full_path(p, to, b, sizeof b)) return KZ_EINVAL;
  struct sim_file *file = kz_map_get_str(&h->files, a);
  if (!file) return KZ_ENOENT;
  if (strcmp(a, b) != 0) {
    void *old = NULL;
    if (kz_map_put_str(&h->files, b, file, &old) != 0) return KZ_EIO;
    kz_map_del_str(&h->files, a);
    kz_deref(old); /* the replaced file, if any */
  }
  trace_fs(p, "rename", a);
  kz_sim_tr_str(h->sim, "to", b);
  kz_sim_tr_end(h->sim);
  return 0;
}

int kz_sim_fs_remove(struct kz_sim_proc *p, const char *path) {
  struct kz_sim_host *h = p->host;
  char a[256];
  if (full_path(p, path, a, sizeof a)) return KZ_EINVAL;
  bool found = false;
  struct sim_file *file = kz_map_del(&h->files, a, strlen(a), &found);
  if (!found) return KZ_ENOENT;
  kz_deref(file);
  trace_fs(p, "remove", a);
  kz_sim_tr_end(h->sim);
  return 0;
}

int kz_sim_fs_exists(struct kz_sim_proc *p, const char *path, bool *exists) {
  char a[256];
  if (full_path(p, path, a, sizeof a)) return KZ_EINVAL;
  *exists = kz_map_get_str(&p->host->files, a) != NULL;
  return 0;
}

size_t kz_sim_fs_reclaim(struct kz_sim_proc *p) {
  size_t n = 0;
  while (p->files) {
    kz_file_close(p->files->f); /* unlinks p->files */
    n++;
  }
  return n;
}

/* Torn crash of one file: the synced image (empty when never synced)
 * plus the first `k` bytes of the logged writes, in order; truncates
 * on the way apply in full.  Returns 0 or KZ_ENOMEM. */
static int torn_image(struct sim_file *file, uint64_t k, struct kz_buf *out) {
  if (file->durable && kz_buf_append(out, file->synced.data, file->synced.len) != 0)
    return KZ_ENOMEM;
  const uint8_t *p = file->wlog.data;
  size_t left = file->wlog.len;
  while (left >= 17) {
    uint8_t type = p[0];
    uint64_t off = kz_get_be64(p + 1), len = kz_get_be64(p + 9);
    if (type == 'T') {
      if (buf_resize(out, off) != 0) return KZ_ENOMEM;
    } else {
      if (k == 0) break;
      uint64_t n = len < k ? len : k;
      if (off + n > out->len && buf_resize(out, off + n) != 0) return KZ_ENOMEM;
      if (n) memcpy(out->data + off, p + 17, (size_t)n);
      k -= n;
    }
    p += 17 + len;
    left -= 17 + (size_t)len;
  }
  return 0;
}

static uint64_t wlog_bytes(const struct sim_file *file) {
  uint64_t total = 0;
  const uint8_t *p = file->wlog.data;
  size_t left = file->wlog.len;
  while (left >= 17) {
    uint64_t len = kz_get_be64(p + 9);
    if (p[0] == 'W') total += len;
    p += 17 + len;
    left -= 17 + (size_t)len;
  }
  return total;
}

size_t kz_sim_fs_host_crashed(struct kz_sim_host *h, size_t *reverted) {
  size_t vanished = 0, kept = 0, pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&h->files, &pos, &k, &kl, &v)) {
    struct sim_file *file = v;
    if (h->crash_mode == KZ_SIM_CRASH_TORN && file->wlog.len) {
      /* Two draws per changed file, always, from the host's stream. */
      bool torn = kz_prng_chance_ppm(&h->prng, 500000);
      uint64_t total = wlog_bytes(file);
      uint64_t keep = kz_prng_below(&h->prng, total + 1);
      if (torn) {
        struct kz_buf img;
        kz_buf_init(&img);
        if (torn_image(file, keep, &img) != 0) kz_sim_fail(h->sim, KZ_ENOMEM);
        kz_buf_free(&file->cur);
        kz_buf_free(&file->synced);
        file->cur = img;
        kz_buf_init(&file->synced);
        if (kz_buf_append(&file->synced, img.data, img.len) != 0) kz_sim_fail(h->sim, KZ_ENOMEM);
        file->durable = true;
        kz_buf_reset(&file->wlog);
        kz_sim_tr_begin(h->sim, "storage_torn");
        kz_sim_tr_who(h->sim, h, NULL);
        kz_sim_tr_strn(h->sim, "path", (const char *)k, kl);
        kz_sim_tr_u64(h->sim, "kept_bytes", keep);
        kz_sim_tr_u64(h->sim, "of", total);
        kz_sim_tr_payload(h->sim, img.data, img.len);
        kz_sim_tr_end(h->sim);
        kept++;
        continue;
      }
    }
    kz_buf_reset(&file->wlog);
    if (!file->durable) {
      char key[256]; /* the map frees its copy of the key */
      if (kl >= sizeof key) kl = sizeof key - 1;
      memcpy(key, k, kl);
      kz_map_del(&h->files, key, kl, NULL);
      kz_deref(file);
      vanished++;
      continue;
    }
    kz_buf_reset(&file->cur);
    if (kz_buf_append(&file->cur, file->synced.data, file->synced.len) != 0)
      kz_sim_fail(h->sim, KZ_ENOMEM);
    kept++;
  }
  *reverted = kept;
  return vanished;
}

void kz_sim_fs_host_free(struct kz_sim_host *h) {
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&h->files, &pos, &k, &kl, &v)) kz_deref(v);
  kz_map_free(&h->files);
}

int kz_sim_file_get(const struct kz_sim_proc *p, const char *path, bool synced,
                    const uint8_t **data, size_t *len) {
  char a[256];
  if (full_path(p, path, a, sizeof a)) return KZ_ENOENT;
  const struct sim_file *file = kz_map_get_str(&p->host->files, a);
  if (!file || (synced && !file->durable)) return KZ_ENOENT;
  const struct kz_buf *b = synced ? &file->synced : &file->cur;
  *data = b->len ? b->data : (const uint8_t *)"";
  *len = b->len;
  return 0;
}
