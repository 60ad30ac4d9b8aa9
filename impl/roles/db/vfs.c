/* vfs.c — a SQLite VFS that maps SQLite's file operations onto kz_env durable storage. */
#include <string.h>

#include "db_int.h"
#include "kz/error.h"
#include "kz/mem.h"

/* SQLite reaches files, time and randomness through a VFS.  Ours sends
 * every file operation to kz_file_* of the instance's env (so the
 * simulator sees and can crash SQLite's writes, and the libuv driver
 * roots them in the data directory), takes time from kz_env_wall and
 * randomness from the env's PRNG, and never sleeps.  One instance owns
 * one connection, so locks are bookkeeping only.  The io_methods are
 * version 1, without shared memory: the store runs WAL in exclusive
 * locking mode, where SQLite keeps the WAL index in heap memory and
 * never calls xShmMap (see store.c). */

struct kzvfs_file {
  sqlite3_file base; /* must come first: SQLite casts */
  struct kz_db *db;
  struct kz_file *f;
  char path[256];
  bool delete_on_close;
  int lock;
};

static struct kz_db *vfs_db(sqlite3_vfs *vfs) { return vfs->pAppData; }

static int kz_to_sqlite_io(struct kz_db *db, int kzerr, int code) {
  db->io_error = kzerr;
  if (kzerr == KZ_ENOSPC) return SQLITE_FULL;
  if (kzerr == KZ_ENOMEM) return SQLITE_IOERR_NOMEM;
  return code;
}

/* ------------------------------------------------------------------ */
/* File methods                                                        */

static int f_close(sqlite3_file *sf) {
  struct kzvfs_file *kf = (struct kzvfs_file *)sf;
  kz_file_close(kf->f);
  kf->f = NULL;
  if (kf->delete_on_close) (void)kz_fs_remove(kf->db->env, kf->path);
  return SQLITE_OK;
}

static int f_read(sqlite3_file *sf, void *buf, int amt, sqlite3_int64 off) {
  struct kzvfs_file *kf = (struct kzvfs_file *)sf;
  if (amt < 0 || off < 0) return SQLITE_IOERR_READ;
  size_t got = 0;
  int rc = kz_file_read(kf->f, (uint64_t)off, buf, (size_t)amt, &got);
  if (rc) return kz_to_sqlite_io(kf->db, rc, SQLITE_IOERR_READ);
  if (got < (size_t)amt) {
    /* SQLite requires the unread tail zeroed on a short read. */
    memset((char *)buf + got, 0, (size_t)amt - got);
    return SQLITE_IOERR_SHORT_READ;
  }
  return SQLITE_OK;
}

static int f_write(sqlite3_file *sf, const void *buf, int amt, sqlite3_int64 off) {
  struct kzvfs_file *kf = (struct kzvfs_file *)sf;
  if (amt < 0 || off < 0) return SQLITE_IOERR_WRITE;
  int rc = kz_file_write(kf->f, (uint64_t)off, buf, (size_t)amt);
  return rc ? kz_to_sqlite_io(kf->db, rc, SQLITE_IOERR_WRITE) : SQLITE_OK;
}

static int f_truncate(sqlite3_file *sf, sqlite3_int64 size) {
  struct kzvfs_file *kf = (struct kzvfs_file *)sf;
  if (size < 0) return SQLITE_IOERR_TRUNCATE;
  int rc = kz_file_truncate(kf->f, (uint64_t)size);
  return rc ? kz_to_sqlite_io(kf->db, rc, SQLITE_IOERR_TRUNCATE) : SQLITE_OK;
}

static int f_sync(sqlite3_file *sf, int flags) {
  struct kzvfs_file *kf = (struct kzvfs_file *)sf;
  (void)flags; /* kz_file_sync is always a full sync */
  int rc = kz_file_sync(kf->f);
  return rc ? kz_to_sqlite_io(kf->db, rc, SQLITE_IOERR_FSYNC) : SQLITE_OK;
}

static int f_size(sqlite3_file *sf, sqlite3_int64 *size) {
  struct kzvfs_file *kf = (struct kzvfs_file *)sf;
  uint64_t s = 0;
  int rc = kz_file_size(kf->f, &s);
  if (rc) return kz_to_sqlite_io(kf->db, rc, SQLITE_IOERR_FSTAT);
  *size = (sqlite3_int64)s;
  return SQLITE_OK;
}

/* One connection per instance and per file: locks only need to be
 * remembered so SQLite's state machine sees what it asked for. */
static int f_lock(sqlite3_file *sf, int level) {
  struct kzvfs_file *kf = (struct kzvfs_file *)sf;
  if (level > kf->lock) kf->lock = level;
  return SQLITE_OK;
}

static int f_unlock(sqlite3_file *sf, int level) {
  struct kzvfs_file *kf = (struct kzvfs_file *)sf;
  if (level < kf->lock) kf->lock = level;
  return SQLITE_OK;
}

static int f_check_reserved(sqlite3_file *sf, int *out) {
  (void)sf;
  *out = 0;
  return SQLITE_OK;
}

static int f_file_control(sqlite3_file *sf, int op, void *arg) {
  (void)sf, (void)op, (void)arg;
  return SQLITE_NOTFOUND;
}

static int f_sector_size(sqlite3_file *sf) {
  (void)sf;
  return 4096;
}

/* No guarantees claimed (no atomic or ordered writes): SQLite then runs
 * its full journal protocol, which also copes with torn writes. */
static int f_device_characteristics(sqlite3_file *sf) {
  (void)sf;
  return 0;
}

static const sqlite3_io_methods kzvfs_io = {
    .iVersion = 1,
    .xClose = f_close,
    .xRead = f_read,
    .xWrite = f_write,
    .xTruncate = f_truncate,
    .xSync = f_sync,
    .xFileSize = f_size,
    .xLock = f_lock,
    .xUnlock = f_unlock,
    .xCheckReservedLock = f_check_reserved,
    .xFileControl = f_file_control,
    .xSectorSize = f_sector_size,
    .xDeviceCharacteristics = f_device_characteristics,
};

/* ------------------------------------------------------------------ */
/* VFS methods                                                         */

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *sf, int flags, int *out_flags) {
  struct kz_db *db = vfs_db(vfs);
  struct kzvfs_file *kf = (struct kzvfs_file *)sf;
  memset(kf, 0, sizeof *kf);
  kf->db = db;
  if (name) {
    size_t n = strlen(name);
    if (n >= sizeof kf->path) return SQLITE_CANTOPEN;
    memcpy(kf->path, name, n + 1);
  } else {
    /* Temporary file: SQLite wants a name of our choosing. */
    char tmp[48];
    int k = 0;
    for (size_t i = 0; i < 16; i++)
      tmp[k++] = "0123456789abcdef"[(db->tmp_counter >> (60 - 4 * i)) & 15];
    tmp[k] = 0;
    db->tmp_counter++;
    memcpy(kf->path, "kzdb-tmp-", 9);
    memcpy(kf->path + 9, tmp, (size_t)k + 1);
  }
  if (!kz_fs_path_valid(kf->path)) return SQLITE_CANTOPEN;
  int kflags = KZ_FILE_READ;
  if (flags & SQLITE_OPEN_READWRITE) kflags |= KZ_FILE_WRITE;
  if (flags & SQLITE_OPEN_CREATE) kflags |= KZ_FILE_CREATE | KZ_FILE_WRITE;
  if ((flags & SQLITE_OPEN_EXCLUSIVE) && (flags & SQLITE_OPEN_CREATE)) kflags |= KZ_FILE_EXCL;
  kf->delete_on_close = (flags & SQLITE_OPEN_DELETEONCLOSE) != 0;
  int rc = kz_file_open(db->env, kf->path, kflags, &kf->f);
  if (rc) {
    db->io_error = rc;
    return SQLITE_CANTOPEN;
  }
  kf->base.pMethods = &kzvfs_io;
  if (out_flags) *out_flags = flags;
  return SQLITE_OK;
}

static int v_delete(sqlite3_vfs *vfs, const char *name, int sync_dir) {
  (void)sync_dir; /* removals are durable when kz_fs_remove returns */
  struct kz_db *db = vfs_db(vfs);
  int rc = kz_fs_remove(db->env, name);
  if (rc == KZ_ENOENT) return SQLITE_IOERR_DELETE_NOENT;
  return rc ? kz_to_sqlite_io(db, rc, SQLITE_IOERR_DELETE) : SQLITE_OK;
}

static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
  (void)flags;
  struct kz_db *db = vfs_db(vfs);
  bool exists = false;
  *out = 0;
  if (!kz_fs_path_valid(name)) return SQLITE_OK;
  int rc = kz_fs_exists(db->env, name, &exists);
  if (rc) return kz_to_sqlite_io(db, rc, SQLITE_IOERR_ACCESS);
  *out = exists ? 1 : 0;
  return SQLITE_OK;
}

static int v_full_pathname(sqlite3_vfs *vfs, const char *name, int n_out, char *out) {
  (void)vfs;
  size_t n = strlen(name);
  if (n_out <= 0 || n >= (size_t)n_out) return SQLITE_CANTOPEN;
  memcpy(out, name, n + 1);
  return SQLITE_OK;
}

static void *v_dlopen(sqlite3_vfs *vfs, const char *name) {
  (void)vfs, (void)name;
  return NULL;
}

static void v_dlerror(sqlite3_vfs *vfs, int n, char *msg) {
  (void)vfs;
  if (n > 0) {
    const char *s = "extensions are not loadable";
    size_t l = strlen(s);
    if (l >= (size_t)n) l = (size_t)n - 1;
    memcpy(msg, s, l);
    msg[l] = 0;
  }
}

static void (*v_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void) {
  (void)vfs, (void)h, (void)sym;
  return NULL;
}

static void v_dlclose(sqlite3_vfs *vfs, void *h) { (void)vfs, (void)h; }

static int v_randomness(sqlite3_vfs *vfs, int n, char *out) {
  struct kz_db *db = vfs_db(vfs);
  if (n > 0) kz_prng_bytes(&db->env->prng, out, (size_t)n);
  return n;
}

/* Nobody else holds our locks, so there is never a reason to wait. */
static int v_sleep(sqlite3_vfs *vfs, int us) {
  (void)vfs;
  return us;
}

/* Julian day number of the Unix epoch, in milliseconds. */
#define UNIX_EPOCH_JD_MS INT64_C(210866760000000)

static int v_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out) {
  struct kz_db *db = vfs_db(vfs);
  *out = kz_env_wall(db->env) / 1000000 + UNIX_EPOCH_JD_MS;
  return SQLITE_OK;
}

static int v_current_time(sqlite3_vfs *vfs, double *out) {
  sqlite3_int64 ms = 0;
  v_current_time_int64(vfs, &ms);
  *out = (double)ms / 86400000.0;
  return SQLITE_OK;
}

static int v_get_last_error(sqlite3_vfs *vfs, int n, char *buf) {
  struct kz_db *db = vfs_db(vfs);
  if (n > 0) {
    const char *s = kz_strerror(db->io_error);
    size_t l = strlen(s);
    if (l >= (size_t)n) l = (size_t)n - 1;
    memcpy(buf, s, l);
    buf[l] = 0;
  }
  return db->io_error;
}

int kz_db_vfs_register(struct kz_db *db) {
  sqlite3_vfs *v = kz_calloc(1, sizeof *v);
  if (!v) return KZ_ENOMEM;
  /* A name no other instance of this process uses: several instances
   * (simulated hosts) live side by side, each with its own env. */
  struct kz_prng g;
  kz_env_prng(db->env, "db.vfs", &g);
  for (int tries = 0;; tries++) {
    memcpy(db->vfs_name, "kz-", 3);
    kz_prng_hex(&g, db->vfs_name + 3, 16);
    db->vfs_name[19] = 0;
    if (!sqlite3_vfs_find(db->vfs_name)) break;
    if (tries > 100) {
      kz_free(v);
      return KZ_EIO;
    }
  }
  v->iVersion = 2;
  v->szOsFile = (int)sizeof(struct kzvfs_file);
  v->mxPathname = 255;
  v->zName = db->vfs_name;
  v->pAppData = db;
  v->xOpen = v_open;
  v->xDelete = v_delete;
  v->xAccess = v_access;
  v->xFullPathname = v_full_pathname;
  v->xDlOpen = v_dlopen;
  v->xDlError = v_dlerror;
  v->xDlSym = v_dlsym;
  v->xDlClose = v_dlclose;
  v->xRandomness = v_randomness;
  v->xSleep = v_sleep;
  v->xCurrentTime = v_current_time;
  v->xGetLastError = v_get_last_error;
  v->xCurrentTimeInt64 = v_current_time_int64;
  if (sqlite3_vfs_register(v, 0) != SQLITE_OK) {
    kz_free(v);
    return KZ_EIO;
  }
  db->vfs = v;
  return 0;
}

void kz_db_vfs_unregister(struct kz_db *db) {
  if (!db->vfs) return;
  sqlite3_vfs_unregister(db->vfs);
  kz_free(db->vfs);
  db->vfs = NULL;
}
