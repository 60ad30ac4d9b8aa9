/* uv_env.c — the real kz_env driver: translates kz_env_ops to libuv handles and POSIX file calls. */
#include "kz/uv_env.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kz/buf.h"
#include "kz/error.h"
#include "kz/list.h"
#include "kz/mem.h"

#define UV_COMPONENT "uv"
#define UV_RXBUF_SIZE 65536
#define UV_LISTEN_BACKLOG 128
#define UV_PATH_MAX 4096
/* How long a closed stream may take to flush before it is cut. */
#define UV_DEFAULT_LINGER_NS (10ull * 1000000000ull)

/* ------------------------------------------------------------------ */
/* Driver objects                                                      */

enum uvh_kind { UVH_UDP, UVH_LISTENER, UVH_SPARE, UVH_STREAM, UVH_FILE };

/* Common head of every driver-side object.  All live objects sit on the
 * env's list so kz_uv_env_free can close what the user left open. */
/* Receive buffer asked for every UDP socket (Kamailio's default size). */
#define UDP_RECV_BUFFER_BYTES (512 * 1024)

struct uvh {
  struct kz_uv_env *e;
  struct kz_list link; /* in e->handles */
  enum uvh_kind kind;
  uv_handle_t *handle; /* NULL for files */
  void *kh;            /* kz handle we hold a reference on, or NULL */
};

struct uv_udp_impl {
  struct uvh h;
  uv_udp_t udp;
  struct kz_udp *u;
};

struct uv_spare;

struct uv_lst_impl {
  struct uvh h;
  uv_tcp_t tcp;
  struct kz_listener *l;
  struct uv_spare *spare; /* NULL only if re-opening it failed */
  bool paused; /* a connection waits for the spare: see lst_reject */
};

/* A listener's spare TCP handle, allocated with it, to take a connection
 * it cannot serve (out of memory, or closed) off libuv's hands and close
 * it.  libuv stops polling a listener whose callback returns without
 * uv_accept until uv_accept is called, so skipping one connection would
 * stall the listener for good and leak its fd.  After each use the
 * handle closes and is opened again in its close callback. */
struct uv_spare {
  struct uvh h;
  uv_tcp_t tcp;
  struct uv_lst_impl *li; /* NULL once the listener is closing */
  bool busy;              /* closing a rejected connection */
};

struct uv_stream_impl {
  struct uvh h;
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_shutdown_t sreq;
  struct kz_stream *s;
  struct kz_buf pending; /* bytes written while connecting */
  struct kz_timer linger; /* bounds the flush after the user's close */
  bool connecting;       /* creq in flight */
  bool user_closed;      /* kz_stream_close was called */
  bool ended;            /* EOF or error delivered: no more reads */
  bool failed;           /* ended by an error: no graceful shutdown */
  bool shutting;         /* sreq in flight */
};

struct uv_file_impl {
  struct uvh h;
  int fd;
  char *dir; /* parent directory to fsync on the next sync, or NULL */
};

/* A queued write or send with its bytes copied behind it. */
struct uv_wreq {
  union {
    uv_write_t w;
    uv_udp_send_t u;
  } req;
  size_t len;
  char data[];
};

struct kz_uv_env {
  struct kz_env env;
  uv_loop_t *loop;
  uv_timer_t timer;
  bool timer_open;
  bool freeing;
  char *data_dir; /* kz_strdup'ed, NULL when storage is disabled */
  kz_uv_wall_fn *wall_fn;
  void *wall_arg;
  int64_t wall_offset;
  kz_uv_log_fn *log_fn;
  void *log_arg;
  uint64_t linger_ns;
  struct kz_list handles; /* of struct uvh, by link, in creation order */
  size_t n_live; /* objects on the list */
  /* One receive buffer for every handle: libuv calls each alloc_cb right
   * before the matching read callback on this one thread. */
  char rxbuf[UV_RXBUF_SIZE];
};

static void env_maybe_finish(struct kz_uv_env *e) {
  if (!e->freeing || e->n_live || e->timer_open) return;
  kz_env_deinit(&e->env);
  kz_free(e->data_dir);
  kz_free(e);
}

static void uvh_link(struct kz_uv_env *e, struct uvh *h, enum uvh_kind kind,
                     uv_handle_t *handle) {
  h->e = e;
  h->kind = kind;
  h->handle = handle;
  if (handle) handle->data = h;
  kz_list_append(&e->handles, &h->link);
  e->n_live++;
}

static void uvh_unlink(struct uvh *h) {
  kz_list_remove(&h->link);
  h->e->n_live--;
}

/* The last step for every libuv-backed object: libuv is done with the
 * handle, so the memory goes and our reference on the kz handle drops. */
static bool spare_reopen(struct uv_spare *sp);

static void uvh_closed_cb(uv_handle_t *handle) {
  struct uvh *h = handle->data;
  struct kz_uv_env *e = h->e;
  void *kh = h->kh;
  if (h->kind == UVH_SPARE && spare_reopen((struct uv_spare *)h)) return;
  if (h->kind == UVH_STREAM) {
    struct uv_stream_impl *si = (struct uv_stream_impl *)h;
    kz_buf_free(&si->pending);
    kz_timer_stop(&si->linger);
  }
  uvh_unlink(h);
  kz_free(h);
  kz_deref(kh);
  env_maybe_finish(e);
}

static void uvh_close(struct uvh *h) {
  if (!uv_is_closing(h->handle)) uv_close(h->handle, uvh_closed_cb);
}

/* ------------------------------------------------------------------ */
/* Errors and addresses                                                */

int kz_uv_err(int err) {
  switch (err) {
  case 0:
    return 0;
  case UV_ENOMEM:
  case UV_ENOBUFS:
    return KZ_ENOMEM;
  case UV_EINVAL:
  case UV_EAFNOSUPPORT:
  case UV_EBADF:
  case UV_EISDIR:
  case UV_ENAMETOOLONG:
  case UV_ELOOP:
  case UV_EFAULT:
    return KZ_EINVAL;
  case UV_EAGAIN:
    return KZ_EAGAIN;
  case UV_ENOENT:
  case UV_ENOTDIR:
    return KZ_ENOENT;
  case UV_EEXIST:
  case UV_ENOTEMPTY:
    return KZ_EEXIST;
  case UV_ETIMEDOUT:
    return KZ_ETIMEDOUT;
  case UV_ECONNREFUSED:
    return KZ_ECONNREFUSED;
  case UV_ECONNRESET:
  case UV_ECONNABORTED:
  case UV_EPIPE:
    return KZ_ECONNRESET;
  case UV_EADDRINUSE:
    return KZ_EADDRINUSE;
  case UV_EADDRNOTAVAIL:
    return KZ_EADDRNOTAVAIL;
  case UV_ENOSPC:
  case UV_EFBIG:
    return KZ_ENOSPC;
  case UV_ERANGE:
    return KZ_ERANGE;
  case UV_ENOTSUP:
  case UV_ENOSYS:
  case UV_EPROTONOSUPPORT:
    return KZ_ENOTSUP;
  case UV_EBUSY:
  case UV_ETXTBSY:
    return KZ_EBUSY;
  case UV_ECANCELED:
    return KZ_ECANCELED;
  case UV_EMSGSIZE:
    return KZ_EMSGSIZE;
  case UV_ENOTCONN:
    return KZ_ENOTCONN;
  case UV_EHOSTUNREACH:
  case UV_ENETUNREACH:
    return KZ_EHOSTUNREACH;
  case UV_EHOSTDOWN:
  case UV_ENETDOWN:
    return KZ_EHOSTDOWN;
  case UV_EACCES:
  case UV_EPERM:
  case UV_EROFS:
    return KZ_EPERM;
  case UV_EOF:
    return KZ_ECLOSED;
  default:
#ifdef EDQUOT
    if (err == uv_translate_sys_error(EDQUOT)) return KZ_ENOSPC;
#endif
    return KZ_EIO;
  }
}

static int errno_err(void) { return kz_uv_err(uv_translate_sys_error(errno)); }

static int addr_to_sa(const struct kz_addr *a, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (a->family == 4) {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(a->port);
    memcpy(&in->sin_addr, a->ip, 4);
    return 0;
  }
  if (a->family == 6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(a->port);
    memcpy(&in6->sin6_addr, a->ip, 16);
    return 0;
  }
  return KZ_EINVAL;
}

static void sa_to_addr(const struct sockaddr *sa, struct kz_addr *a) {
  memset(a, 0, sizeof(*a));
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    a->family = 4;
    a->port = ntohs(in->sin_port);
    memcpy(a->ip, &in->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    a->family = 6;
    a->port = ntohs(in6->sin6_port);
    memcpy(a->ip, &in6->sin6_addr, 16);
  }
}

static void rx_alloc_cb(uv_handle_t *handle, size_t suggested,
                        uv_buf_t *buf) {
  struct uvh *h = handle->data;
  *buf = uv_buf_init(h->e->rxbuf, sizeof(h->e->rxbuf));
}

/* ------------------------------------------------------------------ */
/* Clock, timer, log                                                   */

static uint64_t op_now(void *drv) { return uv_hrtime(); }

static int64_t op_wall(void *drv) {
  struct kz_uv_env *e = drv;
  int64_t t;
  if (e->wall_fn) {
    t = e->wall_fn(e->wall_arg);
  } else {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  }
  return t + e->wall_offset;
}

static void timer_cb(uv_timer_t *t);

/* Arms the one uv timer for absolute monotonic `deadline` (ns).  libuv
 * counts timeouts in whole ms from its cached loop time, which lags
 * uv_hrtime; the timeout is computed from that cached time and rounded
 * up, so the timer never fires before the deadline. */
static void timer_arm(struct kz_uv_env *e, uint64_t deadline) {
  if (e->freeing) return;
  if (deadline == UINT64_MAX) {
    uv_timer_stop(&e->timer);
    return;
  }
  uv_update_time(e->loop);
  uint64_t base = uv_now(e->loop) * 1000000ull;
  uint64_t ms = deadline > base ? (deadline - base + 999999ull) / 1000000ull : 0;
  uv_timer_start(&e->timer, timer_cb, ms, 0);
}

static void timer_cb(uv_timer_t *t) {
  struct kz_uv_env *e = t->data;
  kz_env_run_timers(&e->env);
  /* Whatever the callbacks did, re-arm to the earliest deadline; one that
   * has passed already (a timer restarted with no delay) gets a 0 ms
   * timeout, i.e. the next loop iteration, after I/O has been polled. */
  timer_arm(e, kz_env_next_deadline(&e->env));
}

static void op_deadline_changed(void *drv, uint64_t deadline) {
  timer_arm(drv, deadline);
}

static void op_log_write(void *drv, int level, const char *line, size_t len) {
  struct kz_uv_env *e = drv;
  if (e->log_fn) {
    e->log_fn(e->log_arg, level, line, len);
    return;
  }
  fprintf(stderr, "%.*s\n", (int)len, line);
}

/* ------------------------------------------------------------------ */
/* UDP                                                                 */

static void udp_recv_cb(uv_udp_t *handle, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *from, unsigned flags) {
  struct uv_udp_impl *ui = handle->data;
  if (nread == 0 && !from) return; /* nothing more to read for now */
  if (nread < 0) {
    kz_log(&ui->h.e->env, KZ_LOG_DEBUG, UV_COMPONENT, "udp receive error: %s",
           uv_strerror((int)nread));
    return;
  }
  if (flags & UV_UDP_PARTIAL) return; /* truncated: drop, as the wire would */
  if (!from || !ui->u) return;
  struct kz_addr a;
  sa_to_addr(from, &a);
  kz_udp_deliver(ui->u, &a, (const uint8_t *)buf->base, (size_t)nread);
}

static int op_udp_bind(void *drv, struct kz_udp *u,
                       const struct kz_addr *local) {
  struct kz_uv_env *e = drv;
  struct sockaddr_storage ss;
  int rc = addr_to_sa(local, &ss);
  if (rc < 0) return rc;
  struct uv_udp_impl *ui = kz_calloc(1, sizeof(*ui));
  if (!ui) return KZ_ENOMEM;
  rc = uv_udp_init(e->loop, &ui->udp);
  if (rc < 0) {
    kz_free(ui);
    return kz_uv_err(rc);
  }
  uvh_link(e, &ui->h, UVH_UDP, (uv_handle_t *)&ui->udp);
  rc = uv_udp_bind(&ui->udp, (const struct sockaddr *)&ss, 0);
  if (rc == 0) {
    /* SIP bursts overflow the kernel's default receive buffer (~208 KiB)
     * long before the CPU is busy (bench/proxy); ask for what Kamailio
     * uses.  The kernel may cap it (rmem_max): best effort, not an error. */
    int want = UDP_RECV_BUFFER_BYTES;
    (void)uv_recv_buffer_size((uv_handle_t *)&ui->udp, &want);
    int len = sizeof(ss);
    rc = uv_udp_getsockname(&ui->udp, (struct sockaddr *)&ss, &len);
  }
  if (rc == 0) rc = uv_udp_recv_start(&ui->udp, rx_alloc_cb, udp_recv_cb);
  if (rc < 0) {
    uvh_close(&ui->h);
    return kz_uv_err(rc);
  }
  sa_to_addr((const struct sockaddr *)&ss, &u->local);
  ui->u = u;
  u->impl = ui;
  ui->h.kh = kz_ref(u);
  return 0;
}

static void udp_send_cb(uv_udp_send_t *req, int status) {
  struct uv_wreq *w = req->data;
  /* Best effort: a failed queued datagram is a lost datagram. */
  kz_free(w);
}

static int op_udp_send(void *drv, struct kz_udp *u, const struct kz_addr *to,
                       const void *data, size_t len) {
  struct uv_udp_impl *ui = u->impl;
  if (!ui || uv_is_closing(ui->h.handle)) return KZ_ECLOSED;
  /* No datagram is longer than this, and uv_buf_t counts bytes in an
   * unsigned int: a longer len would be silently cut. */
  if (len > 65535) return KZ_EMSGSIZE;
  struct sockaddr_storage ss;
  int rc = addr_to_sa(to, &ss);
  if (rc < 0) return rc;
  uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
  rc = uv_udp_try_send(&ui->udp, &b, 1, (const struct sockaddr *)&ss);
  if (rc >= 0) return 0;
  if (rc != UV_EAGAIN && rc != UV_ENOSYS) return kz_uv_err(rc);
  /* The socket buffer is full or sends are already queued: queue a copy
   * so datagrams leave in order. */
  struct uv_wreq *w = kz_malloc(sizeof(*w) + len);
  if (!w) return KZ_ENOMEM;
  w->len = len;
  memcpy(w->data, data, len);
  w->req.u.data = w;
  b = uv_buf_init(w->data, (unsigned)len);
  rc = uv_udp_send(&w->req.u, &ui->udp, &b, 1, (const struct sockaddr *)&ss,
                   udp_send_cb);
  if (rc < 0) {
    kz_free(w);
    return kz_uv_err(rc);
  }
  return 0;
}

static void op_udp_close(void *drv, struct kz_udp *u) {
  struct uv_udp_impl *ui = u->impl;
  if (!ui) return;
  ui->u = NULL;
  uvh_close(&ui->h);
}

/* ------------------------------------------------------------------ */
/* Streams                                                             */

static void stream_close_now(struct uv_stream_impl *si) { uvh_close(&si->h); }

/* The peer did not take our last bytes in time: cut the stream rather
 * than keep its memory and socket forever. */
static void linger_cb(void *arg) {
  struct uv_stream_impl *si = arg;
  kz_log(&si->h.e->env, KZ_LOG_DEBUG, UV_COMPONENT,
         "stream %llu: flush timed out after close, cutting it",
         (unsigned long long)(si->s ? si->s->id : 0));
  stream_close_now(si);
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  struct uv_stream_impl *si = req->handle->data;
  si->shutting = false;
  stream_close_now(si);
}

/* The user closed the stream: flush what is queued (uv_shutdown runs
 * after every pending write), then close. */
static void stream_finish(struct uv_stream_impl *si) {
  if (uv_is_closing(si->h.handle) || si->shutting) return;
  uv_read_stop((uv_stream_t *)&si->tcp);
  if (si->failed || si->h.e->freeing) {
    stream_close_now(si);
    return;
  }
  int rc = uv_shutdown(&si->sreq, (uv_stream_t *)&si->tcp, shutdown_cb);
  if (rc < 0 || kz_timer_start(&si->linger, si->h.e->linger_ns) < 0) {
    stream_close_now(si);
    return;
  }
  si->shutting = true;
}

/* The stream ended by itself: stop reading and tell the user, unless
 * they already closed it. */
static void stream_ended(struct uv_stream_impl *si, int status) {
  if (si->ended) return;
  si->ended = true;
  if (status != 0) si->failed = true;
  uv_read_stop((uv_stream_t *)&si->tcp);
  if (si->user_closed) {
    stream_finish(si);
    return;
  }
  kz_stream_deliver_close(si->s, status);
}

static void stream_read_cb(uv_stream_t *stream, ssize_t nread,
                           const uv_buf_t *buf) {
  struct uv_stream_impl *si = stream->data;
  if (nread == 0) return;
  if (nread < 0) {
    stream_ended(si, nread == UV_EOF ? 0 : kz_uv_err((int)nread));
    return;
  }
  if (si->user_closed) return;
  kz_stream_deliver_data(si->s, (const uint8_t *)buf->base, (size_t)nread);
}

static void stream_write_cb(uv_write_t *req, int status) {
  struct uv_wreq *w = req->data;
  struct uv_stream_impl *si = req->handle->data;
  kz_free(w);
  if (status < 0 && status != UV_ECANCELED && !si->h.e->freeing)
    stream_ended(si, kz_uv_err(status));
}

/* uv_buf_t counts bytes in an unsigned int: longer writes go out as
 * several buffers. */
#define UV_BUF_MAX ((size_t)UINT_MAX)

/* Sends bytes now: directly when nothing is queued, the rest as a copied
 * uv_write.  Returns 0 or a KZ_E* code. */
static int stream_send(struct uv_stream_impl *si, const void *data,
                       size_t len) {
  const char *p = data;
  uv_stream_t *st = (uv_stream_t *)&si->tcp;
  if (len == 0) return 0;
  if (uv_stream_get_write_queue_size(st) == 0) {
    /* A partial write (at most UV_BUF_MAX) leaves the rest to uv_write. */
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)p,
                             (unsigned)(len < UV_BUF_MAX ? len : UV_BUF_MAX));
    int n = uv_try_write(st, &b, 1);
    if (n >= 0) {
      p += n;
      len -= (size_t)n;
      if (len == 0) return 0;
    } else if (n != UV_EAGAIN && n != UV_ENOSYS) {
      return n == UV_ENOMEM ? KZ_ENOMEM : KZ_ECLOSED;
    }
  }
  struct uv_wreq *w = kz_malloc(sizeof(*w) + len);
  if (!w) return KZ_ENOMEM;
  w->len = len;
  memcpy(w->data, p, len);
  w->req.w.data = w;
  size_t nbufs = (len + UV_BUF_MAX - 1) / UV_BUF_MAX;
  uv_buf_t one, *bufs = &one;
  /* uv_write copies the buffer array, so a long one is freed right
   * after; nbufs > 1 means more than 4 GiB anyway. */
  if (nbufs > 1 && !(bufs = kz_calloc(nbufs, sizeof(*bufs)))) {
    kz_free(w);
    return KZ_ENOMEM;
  }
  for (size_t i = 0; i < nbufs; i++) {
    size_t off = i * UV_BUF_MAX, n = len - off < UV_BUF_MAX ? len - off : UV_BUF_MAX;
    bufs[i] = uv_buf_init(w->data + off, (unsigned)n);
  }
  int rc = uv_write(&w->req.w, st, bufs, (unsigned)nbufs, stream_write_cb);
  if (bufs != &one) kz_free(bufs);
  if (rc < 0) {
    kz_free(w);
    return rc == UV_ENOMEM ? KZ_ENOMEM : KZ_ECLOSED;
  }
  return 0;
}

static void stream_start_reading(struct uv_stream_impl *si) {
  int rc = uv_read_start((uv_stream_t *)&si->tcp, rx_alloc_cb, stream_read_cb);
  if (rc < 0) stream_ended(si, kz_uv_err(rc));
}

static void stream_fill_addrs(struct uv_stream_impl *si, struct kz_addr *local,
                              struct kz_addr *peer) {
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getsockname(&si->tcp, (struct sockaddr *)&ss, &len) == 0)
    sa_to_addr((const struct sockaddr *)&ss, local);
  len = sizeof(ss);
  if (uv_tcp_getpeername(&si->tcp, (struct sockaddr *)&ss, &len) == 0)
    sa_to_addr((const struct sockaddr *)&ss, peer);
}

static void connect_cb(uv_connect_t *req, int status) {
  struct uv_stream_impl *si = req->handle->data;
  si->connecting = false;
  if (status == UV_ECANCELED || uv_is_closing(si->h.handle)) return;
  if (status < 0) {
    kz_buf_free(&si->pending);
    stream_ended(si, kz_uv_err(status));
    return;
  }
  stream_fill_addrs(si, &si->s->local, &si->s->peer);
  /* Bytes written while connecting go first, so that a close from inside
   * on_connect still flushes them. */
  if (si->pending.len) {
    int rc = stream_send(si, si->pending.data, si->pending.len);
    kz_buf_free(&si->pending);
    if (rc < 0) {
      stream_ended(si, rc == KZ_ENOMEM ? KZ_ENOMEM : KZ_ECONNRESET);
      return;
    }
  }
  if (si->user_closed) {
    stream_finish(si);
    return;
  }
  kz_stream_deliver_connect(si->s);
  if (!si->user_closed && !si->ended) stream_start_reading(si);
}

static struct uv_stream_impl *stream_impl_new(struct kz_uv_env *e, int *rc) {
  struct uv_stream_impl *si = kz_calloc(1, sizeof(*si));
  if (!si) {
    *rc = KZ_ENOMEM;
    return NULL;
  }
  *rc = uv_tcp_init(e->loop, &si->tcp);
  if (*rc < 0) {
    kz_free(si);
    *rc = kz_uv_err(*rc);
    return NULL;
  }
  uvh_link(e, &si->h, UVH_STREAM, (uv_handle_t *)&si->tcp);
  kz_timer_init(&si->linger, &e->env, linger_cb, si);
  return si;
}

static int op_connect(void *drv, struct kz_stream *s,
                      const struct kz_addr *remote) {
  struct kz_uv_env *e = drv;
  struct sockaddr_storage ss;
  int rc = addr_to_sa(remote, &ss);
  if (rc < 0) return rc;
  struct uv_stream_impl *si = stream_impl_new(e, &rc);
  if (!si) return rc;
  rc = uv_tcp_connect(&si->creq, &si->tcp, (const struct sockaddr *)&ss,
                      connect_cb);
  if (rc < 0) {
    uvh_close(&si->h);
    return kz_uv_err(rc);
  }
  si->connecting = true;
  si->s = s;
  s->impl = si;
  s->peer = *remote;
  si->h.kh = kz_ref(s);
  return 0;
}

static int op_stream_write(void *drv, struct kz_stream *s, const void *data,
                           size_t len) {
  struct uv_stream_impl *si = s->impl;
  if (!si || si->user_closed || si->failed || uv_is_closing(si->h.handle))
    return KZ_ECLOSED;
  if (si->connecting) return kz_buf_append(&si->pending, data, len);
  return stream_send(si, data, len);
}

static void op_stream_close(void *drv, struct kz_stream *s) {
  struct uv_stream_impl *si = s->impl;
  if (!si || si->user_closed) return;
  si->s = s;
  si->user_closed = true;
  /* A connecting stream finishes in connect_cb: it flushes what was
   * written meanwhile once connected, or just closes on failure. */
  if (si->connecting) return;
  stream_finish(si);
}

static void listen_cb(uv_stream_t *server, int status);

/* Takes the pending connection off the listener into its spare handle
 * and closes it: the peer sees the connection reset or closed, and the
 * listener keeps being polled. */
static void lst_reject(struct uv_lst_impl *li, int why) {
  struct kz_uv_env *e = li->h.e;
  struct uv_spare *sp = li->spare;
  if (!sp || sp->busy) {
    /* The spare is still closing the previous refused connection: leave
     * this one pending (libuv pauses the listener meanwhile); the spare's
     * close callback comes back for it.  Without a spare at all the
     * listener stays paused: say so. */
    li->paused = true;
    if (!sp)
      kz_log(&e->env, KZ_LOG_ERROR, UV_COMPONENT,
             "listener has no spare handle left: accepting is stalled");
    return;
  }
  int rc = uv_accept((uv_stream_t *)&li->tcp, (uv_stream_t *)&sp->tcp);
  /* Whether uv_accept failed or not, the pending fd is gone (closed by
   * libuv on failure) and the listener is polled again. */
  if (rc == 0)
    kz_log(&e->env, KZ_LOG_WARN, UV_COMPONENT,
           "accept: %s, connection dropped", kz_err_name(why));
  sp->busy = true;
  uvh_close(&sp->h);
}

/* Re-opens a spare whose close completed, for the next refused
 * connection, and takes up a connection left pending meanwhile.  False
 * when the spare is to be freed instead (its listener is closing, the
 * driver is being freed, or the handle cannot be opened again). */
static bool spare_reopen(struct uv_spare *sp) {
  struct uv_lst_impl *li = sp->li;
  struct kz_uv_env *e = sp->h.e;
  if (!li || e->freeing) return false;
  if (uv_tcp_init(e->loop, &sp->tcp) < 0) {
    li->spare = NULL;
    return false;
  }
  sp->tcp.data = &sp->h;
  sp->busy = false;
  if (li->paused) {
    li->paused = false;
    listen_cb((uv_stream_t *)&li->tcp, 0);
  }
  return true;
}

static void listen_cb(uv_stream_t *server, int status) {
  struct uv_lst_impl *li = server->data;
  struct kz_uv_env *e = li->h.e;
  if (status < 0) {
    kz_log(&e->env, KZ_LOG_WARN, UV_COMPONENT, "accept failed: %s",
           uv_strerror(status));
    return;
  }
  int rc = KZ_ECLOSED;
  struct uv_stream_impl *si = li->l ? stream_impl_new(e, &rc) : NULL;
  if (!si) {
    lst_reject(li, rc);
    return;
  }
  rc = uv_accept(server, (uv_stream_t *)&si->tcp);
  if (rc < 0 || !li->l) {
    uvh_close(&si->h);
    return;
  }
  struct kz_addr local = {0}, peer = {0};
  stream_fill_addrs(si, &local, &peer);
  struct kz_stream *s = NULL;
  rc = kz_listener_deliver_accept(li->l, si, &local, &peer, &s);
  if (rc < 0) {
    uvh_close(&si->h);
    return;
  }
  /* deliver_accept took the driver's reference for us. */
  si->h.kh = s;
  si->s = s;
  if (!si->user_closed) stream_start_reading(si);
}

/* Closes a listener and its spare (which, closing already or not, is
 * freed once closed since it no longer has a listener). */
static void lst_close(struct uv_lst_impl *li) {
  li->l = NULL;
  if (li->spare) {
    li->spare->li = NULL;
    uvh_close(&li->spare->h);
    li->spare = NULL;
  }
  uvh_close(&li->h);
}

static int op_listen(void *drv, struct kz_listener *l,
                     const struct kz_addr *local) {
  struct kz_uv_env *e = drv;
  struct sockaddr_storage ss;
  int rc = addr_to_sa(local, &ss);
  if (rc < 0) return rc;
  struct uv_lst_impl *li = kz_calloc(1, sizeof(*li));
  struct uv_spare *sp = kz_calloc(1, sizeof(*sp));
  if (!li || !sp) {
    kz_free(li);
    kz_free(sp);
    return KZ_ENOMEM;
  }
  rc = uv_tcp_init(e->loop, &sp->tcp);
  if (rc < 0) {
    kz_free(li);
    kz_free(sp);
    return kz_uv_err(rc);
  }
  uvh_link(e, &sp->h, UVH_SPARE, (uv_handle_t *)&sp->tcp);
  rc = uv_tcp_init(e->loop, &li->tcp);
  if (rc < 0) {
    kz_free(li);
    uvh_close(&sp->h);
    return kz_uv_err(rc);
  }
  uvh_link(e, &li->h, UVH_LISTENER, (uv_handle_t *)&li->tcp);
  sp->li = li;
  li->spare = sp;
  rc = uv_tcp_bind(&li->tcp, (const struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&li->tcp, UV_LISTEN_BACKLOG, listen_cb);
  if (rc == 0) {
    int len = sizeof(ss);
    rc = uv_tcp_getsockname(&li->tcp, (struct sockaddr *)&ss, &len);
  }
  if (rc < 0) {
    lst_close(li);
    return kz_uv_err(rc);
  }
  sa_to_addr((const struct sockaddr *)&ss, &l->local);
  li->l = l;
  l->impl = li;
  li->h.kh = kz_ref(l);
  return 0;
}

static void op_listen_close(void *drv, struct kz_listener *l) {
  struct uv_lst_impl *li = l->impl;
  if (!li) return;
  lst_close(li);
}

/* ------------------------------------------------------------------ */
/* Files                                                               */

/* Joins data_dir and a checked relative path.  0, KZ_ENOTSUP (no data
 * directory) or KZ_EINVAL (too long). */
static int fs_abs(struct kz_uv_env *e, const char *path, char *out) {
  if (!e->data_dir) return KZ_ENOTSUP;
  int n = snprintf(out, UV_PATH_MAX, "%s/%s", e->data_dir, path);
  return (n < 0 || n >= UV_PATH_MAX) ? KZ_EINVAL : 0;
}

/* Makes directory-entry changes in `dir` durable. */
static int fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_err();
  int rc = fsync(fd) < 0 ? errno_err() : 0;
  close(fd);
  return rc;
}

/* Same for the directory holding `abs` (which always contains a '/':
 * it is data_dir joined with a relative path). */
static int fsync_parent(const char *abs) {
  char dir[UV_PATH_MAX];
  const char *slash = strrchr(abs, '/');
  size_t n = slash ? (size_t)(slash - abs) : 0;
  if (n == 0) return fsync_dir(slash ? "/" : ".");
  memcpy(dir, abs, n);
  dir[n] = '\0';
  return fsync_dir(dir);
}

/* mkdir -p of every directory in `path` from offset `from` on; when
 * `last` is false the final component is a file name and is skipped.
 * Each directory it creates has its parent synced right away: the file
 * or rename that needed it is durable only if the whole chain of new
 * entries is, and kz_file_sync and renames sync only the last one. */
static int mkdir_p(const char *path, size_t from, bool last) {
  char buf[UV_PATH_MAX];
  size_t n = strlen(path);
  if (n >= sizeof(buf)) return KZ_EINVAL;
  memcpy(buf, path, n + 1);
  for (size_t i = from; i <= n; i++) {
    if (i < n && buf[i] != '/') continue;
    if (i == n && !last) break;
    if (i == 0) continue; /* the root of an absolute path */
    char c = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, 0755) < 0) {
      if (errno != EEXIST) return errno_err();
    } else {
      int rc = fsync_parent(buf);
      if (rc < 0) return rc;
    }
    buf[i] = c;
  }
  return 0;
}

static char *parent_dup(const char *abs) {
  const char *slash = strrchr(abs, '/');
  if (!slash) return kz_strdup(".");
  if (slash == abs) return kz_strdup("/");
  return kz_strndup(abs, (size_t)(slash - abs));
}

static int op_file_open(void *drv, struct kz_file *f, const char *path,
                        int flags) {
  struct kz_uv_env *e = drv;
  char abs[UV_PATH_MAX];
  int rc = fs_abs(e, path, abs);
  if (rc < 0) return rc;
  int oflags = O_CLOEXEC;
  if ((flags & KZ_FILE_READ) && (flags & KZ_FILE_WRITE))
    oflags |= O_RDWR;
  else if (flags & KZ_FILE_WRITE)
    oflags |= O_WRONLY;
  else if (flags & KZ_FILE_READ)
    oflags |= O_RDONLY;
  else
    return KZ_EINVAL;
  if (flags & KZ_FILE_CREATE) oflags |= O_CREAT;
  if (flags & KZ_FILE_TRUNC) oflags |= O_TRUNC;
  if (flags & KZ_FILE_EXCL) oflags |= O_EXCL | O_CREAT;
  struct uv_file_impl *fi = kz_calloc(1, sizeof(*fi));
  if (!fi) return KZ_ENOMEM;
  if (oflags & O_CREAT) {
    /* A created file's directory entry is durable only once its parent
     * directory is synced too: remember it for kz_file_sync. */
    fi->dir = parent_dup(abs);
    if (!fi->dir) {
      kz_free(fi);
      return KZ_ENOMEM;
    }
    rc = mkdir_p(abs, strlen(e->data_dir) + 1, false);
    if (rc < 0) goto fail;
  }
  do {
    fi->fd = open(abs, oflags, 0644);
  } while (fi->fd < 0 && errno == EINTR);
  if (fi->fd < 0) {
    rc = errno_err();
    goto fail;
  }
  uvh_link(e, &fi->h, UVH_FILE, NULL);
  f->impl = fi;
  fi->h.kh = kz_ref(f);
  return 0;
fail:
  kz_free(fi->dir);
  kz_free(fi);
  return rc;
}

static int op_file_read(void *drv, struct kz_file *f, uint64_t off, void *buf,
                        size_t len, size_t *nread) {
  struct uv_file_impl *fi = f->impl;
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fi->fd, (char *)buf + done, len - done,
                      (off_t)(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EINVAL ? KZ_EINVAL : KZ_EIO;
    }
    if (n == 0) break;
    done += (size_t)n;
  }
  *nread = done;
  return 0;
}

static int op_file_write(void *drv, struct kz_file *f, uint64_t off,
                         const void *buf, size_t len) {
  struct uv_file_impl *fi = f->impl;
  size_t done = 0;
  while (done < len) {
    ssize_t n = pwrite(fi->fd, (const char *)buf + done, len - done,
                       (off_t)(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      int rc = errno_err();
      return (rc == KZ_ENOSPC || rc == KZ_EINVAL || rc == KZ_ENOMEM) ? rc
                                                                     : KZ_EIO;
    }
    done += (size_t)n;
  }
  return 0;
}

static int op_file_size(void *drv, struct kz_file *f, uint64_t *size) {
  struct uv_file_impl *fi = f->impl;
  struct stat st;
  if (fstat(fi->fd, &st) < 0) return KZ_EIO;
  *size = (uint64_t)st.st_size;
  return 0;
}

static int op_file_truncate(void *drv, struct kz_file *f, uint64_t size) {
  struct uv_file_impl *fi = f->impl;
  int rc;
  do {
    rc = ftruncate(fi->fd, (off_t)size);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    rc = errno_err();
    return (rc == KZ_ENOSPC || rc == KZ_EINVAL) ? rc : KZ_EIO;
  }
  return 0;
}

static int op_file_sync(void *drv, struct kz_file *f) {
  struct uv_file_impl *fi = f->impl;
  if (fsync(fi->fd) < 0) return KZ_EIO;
  if (fi->dir) {
    if (fsync_dir(fi->dir) < 0) return KZ_EIO;
    kz_free(fi->dir);
    fi->dir = NULL;
  }
  return 0;
}

/* Releases a file object: used by kz_file_close and kz_uv_env_free. */
static void file_release(struct uv_file_impl *fi) {
  void *kh = fi->h.kh;
  close(fi->fd);
  uvh_unlink(&fi->h);
  kz_free(fi->dir);
  kz_free(fi);
  kz_deref(kh);
}

static void op_file_close(void *drv, struct kz_file *f) {
  struct uv_file_impl *fi = f->impl;
  if (!fi) return;
  f->impl = NULL;
  file_release(fi);
}

static int fs_result(int rc) {
  return (rc == KZ_EINVAL || rc == KZ_ENOENT || rc == KZ_ENOTSUP) ? rc : KZ_EIO;
}

static int op_fs_rename(void *drv, const char *from, const char *to) {
  struct kz_uv_env *e = drv;
  char afrom[UV_PATH_MAX], ato[UV_PATH_MAX];
  int rc = fs_abs(e, from, afrom);
  if (rc == 0) rc = fs_abs(e, to, ato);
  if (rc < 0) return rc;
  rc = mkdir_p(ato, strlen(e->data_dir) + 1, false);
  if (rc < 0) return fs_result(rc);
  if (rename(afrom, ato) < 0) return fs_result(errno_err());
  /* Durable on return: sync both directories when they differ. */
  rc = fsync_parent(ato);
  const char *sf = strrchr(afrom, '/'), *st = strrchr(ato, '/');
  if (rc == 0 && ((sf - afrom) != (st - ato) ||
                  memcmp(afrom, ato, (size_t)(sf - afrom)) != 0))
    rc = fsync_parent(afrom);
  return rc < 0 ? KZ_EIO : 0;
}

static int op_fs_remove(void *drv, const char *path) {
  struct kz_uv_env *e = drv;
  char abs[UV_PATH_MAX];
  int rc = fs_abs(e, path, abs);
  if (rc < 0) return rc;
  if (unlink(abs) < 0) {
    /* Paths may name directories too (emptied by the caller). */
    if ((errno != EISDIR && errno != EPERM) || rmdir(abs) < 0) {
      rc = errno_err();
      return rc == KZ_EEXIST ? KZ_EIO : fs_result(rc);
    }
  }
  return fsync_parent(abs) < 0 ? KZ_EIO : 0;
}

static int op_fs_exists(void *drv, const char *path, bool *exists) {
  struct kz_uv_env *e = drv;
  char abs[UV_PATH_MAX];
  int rc = fs_abs(e, path, abs);
  if (rc < 0) return rc;
  struct stat st;
  if (stat(abs, &st) == 0) {
    *exists = true;
    return 0;
  }
  if (errno == ENOENT || errno == ENOTDIR) {
    *exists = false;
    return 0;
  }
  return KZ_EIO;
}

/* ------------------------------------------------------------------ */
/* The env                                                             */

static const struct kz_env_ops uv_ops = {
    .now = op_now,
    .wall = op_wall,
    .deadline_changed = op_deadline_changed,
    .log_write = op_log_write,
    .udp_bind = op_udp_bind,
    .udp_send = op_udp_send,
    .udp_close = op_udp_close,
    .listen = op_listen,
    .listen_close = op_listen_close,
    .connect = op_connect,
    .stream_write = op_stream_write,
    .stream_close = op_stream_close,
    .file_open = op_file_open,
    .file_read = op_file_read,
    .file_write = op_file_write,
    .file_size = op_file_size,
    .file_truncate = op_file_truncate,
    .file_sync = op_file_sync,
    .file_close = op_file_close,
    .fs_rename = op_fs_rename,
    .fs_remove = op_fs_remove,
    .fs_exists = op_fs_exists,
};

static void timer_closed_cb(uv_handle_t *h) {
  struct kz_uv_env *e = h->data;
  e->timer_open = false;
  env_maybe_finish(e);
}

int kz_uv_env_new(struct kz_uv_env **out, uv_loop_t *loop, const char *name,
                  uint64_t seed, const char *data_dir) {
  if (!out || !loop || !name) return KZ_EINVAL;
  struct kz_uv_env *e = kz_calloc(1, sizeof(*e));
  if (!e) return KZ_ENOMEM;
  int rc = kz_env_init(&e->env, &uv_ops, e, name, seed);
  if (rc < 0) {
    kz_free(e);
    return rc;
  }
  e->loop = loop;
  kz_list_init(&e->handles);
  e->linger_ns = UV_DEFAULT_LINGER_NS;
  if (data_dir) {
    size_t n = strlen(data_dir);
    while (n > 1 && data_dir[n - 1] == '/') n--; /* "dir/" joins as "dir//x" */
    rc = n == 0 || n >= UV_PATH_MAX / 2 ? KZ_EINVAL : 0;
    if (rc == 0) {
      e->data_dir = kz_strndup(data_dir, n);
      rc = e->data_dir ? mkdir_p(e->data_dir, 0, true) : KZ_ENOMEM;
    }
    if (rc < 0) {
      kz_env_deinit(&e->env);
      kz_free(e->data_dir);
      kz_free(e);
      return rc;
    }
  }
  rc = uv_timer_init(loop, &e->timer);
  if (rc < 0) {
    kz_env_deinit(&e->env);
    kz_free(e->data_dir);
    kz_free(e);
    return kz_uv_err(rc);
  }
  e->timer.data = e;
  e->timer_open = true;
  *out = e;
  return 0;
}

struct kz_env *kz_uv_env_get(struct kz_uv_env *e) { return &e->env; }

struct kz_uv_env *kz_uv_env_from(struct kz_env *env) {
  return (env && env->ops == &uv_ops) ? env->drv : NULL;
}

void kz_uv_env_free(struct kz_uv_env *e) {
  if (!e || e->freeing) return;
  e->freeing = true;
  uv_timer_stop(&e->timer);
  uv_close((uv_handle_t *)&e->timer, timer_closed_cb);
  /* Closing h never unlinks the handle after it, so that one, saved
   * first, stays valid. */
  for (struct kz_list *l = e->handles.next, *next; l != &e->handles; l = next) {
    next = l->next;
    struct uvh *h = KZ_CONTAINER_OF(l, struct uvh, link);
    if (h->kind == UVH_FILE) {
      struct uv_file_impl *fi = (struct uv_file_impl *)h;
      ((struct kz_file *)fi->h.kh)->impl = NULL;
      file_release(fi);
    } else {
      if (h->kind == UVH_STREAM) ((struct uv_stream_impl *)h)->user_closed = true;
      if (h->kind == UVH_UDP) ((struct uv_udp_impl *)h)->u = NULL;
      if (h->kind == UVH_LISTENER) {
        lst_close((struct uv_lst_impl *)h);
      } else {
        if (h->kind == UVH_SPARE) ((struct uv_spare *)h)->li = NULL;
        uvh_close(h);
      }
    }
  }
  env_maybe_finish(e);
}

void kz_uv_env_set_wall_clock(struct kz_uv_env *e, kz_uv_wall_fn *fn,
                              void *arg) {
  e->wall_fn = fn;
  e->wall_arg = arg;
}

void kz_uv_env_set_wall_offset(struct kz_uv_env *e, int64_t offset_ns) {
  e->wall_offset = offset_ns;
}

void kz_uv_env_set_log_sink(struct kz_uv_env *e, kz_uv_log_fn *fn, void *arg) {
  e->log_fn = fn;
  e->log_arg = arg;
}

void kz_uv_env_set_close_timeout(struct kz_uv_env *e, uint64_t timeout_ns) {
  e->linger_ns = timeout_ns ? timeout_ns : UV_DEFAULT_LINGER_NS;
}

size_t kz_uv_env_live_handles(const struct kz_uv_env *e) {
  return e->n_live + (e->timer_open ? 1 : 0);
}
