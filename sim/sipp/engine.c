/* engine.c — runs SIPp scenarios as many concurrent UAC or UAS calls over one UDP socket of a kz_env (sans-I/O). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kz/bytes.h"
#include "kz/error.h"
#include "kz/map.h"
#include "kz/mem.h"
#include "kz/prng.h"
#include "kz/sip_msg.h"
#include "sipp_int.h"

#define NS_PER_MS UINT64_C(1000000)

enum var_type { VAR_UNSET = 0, VAR_STR, VAR_DBL, VAR_BOOL };

struct var {
  enum var_type type;
  char *s;
  double d;
  bool b;
};

struct csv_line {
  char **f;
  size_t nf;
};

struct dead {
  uint64_t expiry;
  struct dead *next;
  char id[]; /* NUL-terminated, in the same allocation */
};

struct call {
  struct kz_sipp *e;
  char *key;    /* Call-ID used for matching (without a "///" prefix) */
  char *callid; /* Call-ID as written in messages ([call_id]) */
  size_t callid_len;
  uint64_t number;
  size_t idx;   /* current command */
  uint32_t slot; /* its entry in the engine's timer slots (etimer below) */
  uint64_t started;
  uint32_t cseq;
  struct kz_addr peer;
  /* The last message received: its datagram bytes, and its parsed form
   * while the call is busy with it.  A waiting call keeps only the bytes
   * (call_arm drops the parse; last_msg parses them again if a later send
   * needs them): a parsed message is ~4 KB, and holding one per call in
   * progress made every lookup of a large run miss the cache. */
  struct kz_sip_msg *last_recv;
  struct kz_buf last_recv_data;
  bool last_recv_kept; /* last_recv_data holds last_recv's datagram */
  /* The last message matched is not answered yet: a retransmission of it
   * is absorbed (SIPp's last_recv_hash != 0).  Recognised by its bytes,
   * which last_recv_data holds anyway, instead of a hash of every
   * message received; last_recv_hash only stands in for the bytes when
   * they could not be kept (no memory). */
  bool last_recv_fresh;
  size_t last_recv_len;
  uint64_t last_recv_hash;
  int last_recv_index;
  /* Peer retransmission detection (SIPp's recv_retrans_*): the length
   * and hash of the message that rr_msg answered.  The hash is taken
   * once, when the pair is made, and an incoming message is only hashed
   * when its length matches. */
  uint64_t rr_hash;
  size_t rr_len;
  int rr_recv_index, rr_send_index;
  struct kz_buf rr_msg;
  /* rr_msg's bytes are last_send's, not copied yet: they are only
   * copied away (by swapping the buffers) when last_send is rebuilt,
   * so a call that sends nothing more never copies them. */
  bool rr_in_last_send;
  struct kz_buf last_send;
  int last_send_index;
  bool last_send_invite;
  uint64_t next_retrans;
  uint32_t nb_retrans;
  uint64_t retrans_delay_ms;
  bool paused;
  uint64_t paused_until;
  uint64_t recv_timeout;
  bool timewait;
  char *peer_tag; /* peer_tag_buf, or a heap copy when longer */
  char *routes;
  char *next_url;
  char *auth_chal;
  int auth_code;
  uint32_t nonce_count;
  bool established, ack_pending;
  struct var *vars;
  uint64_t rtd_start[KZ_SIPP_MAX_RTDS];
  uint32_t rtd_done;
  size_t field_line;
  /* The peer's tag in the call itself (SIPp's are ~20 characters): one
   * allocation and free less per call, and no cold block to touch when
   * the call ends. */
  char peer_tag_buf[32];
  /* key and callid point here: one allocation for the call and both
   * strings instead of three. */
  char strs[];
};

struct kz_sipp {
  struct kz_env *env;
  struct kz_sipp_cfg cfg;
  const struct kz_sipp_scenario *sc;
  enum kz_sipp_role role;
  struct kz_udp *udp;
  struct kz_map calls;
  struct kz_map dead;
  struct dead *dead_head, *dead_tail;
  /* Engine timers: the rate timer and one per call, kept in the
   * engine's own heap (etimer below) behind one kz_timer, `tick`. */
  struct kz_timer tick;
  struct etent *th; /* heap of (deadline, sequence) */
  size_t thlen, thcap;
  uint64_t tseq;    /* next sequence number */
  struct eslot *slots;
  size_t nslots, capslots;
  uint32_t free_slot; /* head of the free slots' list, UINT32_MAX none */
  uint64_t start;
  uint64_t numbers;
  struct kz_sipp_stats st;
  struct kz_sipp_msg_stats *ms;
  struct kz_prng prng;
  struct csv_line *csv;
  size_t ncsv;
  bool csv_random;
  char local_ip[KZ_ADDR_STRLEN], remote_ip[KZ_ADDR_STRLEN], media_ip[KZ_ADDR_STRLEN];
  /* Their lengths and the service's, measured once: expand runs for
   * every message sent. */
  size_t local_ip_len, remote_ip_len, media_ip_len, service_len;
  /* [local_port] and a UAC's [remote_port] as text, for the usual offset
   * 0: every message shows them, and they never change. */
  char local_port_txt[8], remote_port_txt[8];
  size_t local_port_len, remote_port_len;
  bool done_notified;
  struct kz_buf scratch;
  /* A parsed message nobody holds any more, parsed into by the next
   * datagram (kz_sip_msg_parse_reuse): one allocation and free of ~4 KB
   * less per message received. */
  struct kz_sip_msg *spare;
};

static bool call_run(struct call *c);
static void rate_cb(void *arg);
static void call_timer_cb(void *arg);

/* ------------------------------------------------------------------ */
/* Engine timers                                                       */

/* Every call used to hold a kz_timer, so the env's heap held one node
 * per call in progress, inside the call: each sift wrote the moved
 * nodes' positions into cold call structs, and at 10,000 calls the heap
 * was a top source of cache misses (bench/sim).  The engine now keeps
 * its timers in a heap of its own, entries (deadline, sequence, slot)
 * whose positions live in a compact slot table, and drives one kz_timer
 * at the earliest deadline.
 *
 * It behaves exactly as the env's timers did, so a simulation is the
 * same event for event: entries are ordered by (deadline, start order)
 * like kz_heap; a wake-up fires the entries due then that were started
 * before it began, in that order (kz_env_run_timers' snapshot rule); and
 * the env is told the earliest deadline at exactly the points where it
 * was told before: after every start, after a stop of a queued timer,
 * and at the end of a wake-up (tsync).  The kz_timer's own deadline is
 * always the heap's earliest, so the env's view never differs. */

#define RATE_SLOT 0u /* slot of the rate timer; calls get the others */
#define NO_POS UINT32_MAX

struct etent {
  uint64_t key, seq;
  uint32_t slot;
};

struct eslot {
  struct call *c;     /* NULL for the rate timer and free slots */
  uint32_t pos;       /* index in th, NO_POS when not queued */
  uint32_t next_free; /* free list link */
};

static bool et_less(const struct etent *a, const struct etent *b) {
  return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static void et_place(struct kz_sipp *e, size_t i, struct etent t) {
  e->th[i] = t;
  e->slots[t.slot].pos = (uint32_t)i;
}

static void et_sift_up(struct kz_sipp *e, size_t i) {
  struct etent t = e->th[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!et_less(&t, &e->th[parent])) break;
    et_place(e, i, e->th[parent]);
    i = parent;
  }
  et_place(e, i, t);
}

static void et_sift_down(struct kz_sipp *e, size_t i) {
  struct etent t = e->th[i];
  for (;;) {
    size_t l = 2 * i + 1;
    if (l >= e->thlen) break;
    size_t m = l;
    if (l + 1 < e->thlen && et_less(&e->th[l + 1], &e->th[l])) m = l + 1;
    if (!et_less(&e->th[m], &t)) break;
    et_place(e, i, e->th[m]);
    i = m;
  }
  et_place(e, i, t);
}

static void et_remove_at(struct kz_sipp *e, size_t i) {
  e->slots[e->th[i].slot].pos = NO_POS;
  struct etent last = e->th[--e->thlen];
  if (i == e->thlen) return;
  et_place(e, i, last);
  if (i > 0 && et_less(&last, &e->th[(i - 1) / 2])) et_sift_up(e, i);
  else et_sift_down(e, i);
}

/* Tells the env the earliest deadline, as a notify of its own timers
 * did (see above). */
static void et_sync(struct kz_sipp *e) {
  if (e->thlen) {
    uint64_t m = e->th[0].key;
    /* Active with that deadline: the env already knows it. */
    if (!kz_timer_active(&e->tick) || kz_timer_deadline(&e->tick) != m) kz_timer_start_at(&e->tick, m);
  } else if (kz_timer_active(&e->tick)) {
    kz_timer_stop(&e->tick);
  } else {
    /* During a wake-up (tick out of the env's heap) the last engine
     * timer went: the env heard "no timer" at this point before, so it
     * hears it now (start then stop, each notifying). */
    kz_timer_start_at(&e->tick, UINT64_MAX);
    kz_timer_stop(&e->tick);
  }
}

/* kz_timer_start_at for engine timer `slot`.  Returns 0 or KZ_ENOMEM
 * (then the timer is stopped, as kz_timer_start_at leaves it). */
static int et_start(struct kz_sipp *e, uint32_t slot, uint64_t deadline) {
  int rc = 0;
  uint32_t pos = e->slots[slot].pos;
  if (pos != NO_POS) et_remove_at(e, pos);
  if (e->thlen == e->thcap) {
    size_t ncap = e->thcap ? e->thcap * 2 : 64;
    struct etent *nt = ncap < NO_POS ? kz_realloc(e->th, ncap * sizeof *nt) : NULL;
    if (!nt) rc = KZ_ENOMEM;
    else {
      e->th = nt;
      e->thcap = ncap;
    }
  }
  if (!rc) {
    e->th[e->thlen] = (struct etent){deadline, e->tseq++, slot};
    e->thlen++;
    et_sift_up(e, e->thlen - 1);
  }
  et_sync(e);
  return rc;
}

static void et_stop(struct kz_sipp *e, uint32_t slot) {
  uint32_t pos = e->slots[slot].pos;
  if (pos == NO_POS) return;
  et_remove_at(e, pos);
  et_sync(e);
}

static bool et_active(const struct kz_sipp *e, uint32_t slot) { return e->slots[slot].pos != NO_POS; }

/* A slot for a new call; returns 0 or KZ_ENOMEM. */
static int et_slot_new(struct kz_sipp *e, struct call *c, uint32_t *out) {
  uint32_t s = e->free_slot;
  if (s != NO_POS) {
    e->free_slot = e->slots[s].next_free;
  } else {
    if (e->nslots == e->capslots) {
      size_t ncap = e->capslots ? e->capslots * 2 : 64;
      struct eslot *ns = ncap < NO_POS ? kz_realloc(e->slots, ncap * sizeof *ns) : NULL;
      if (!ns) return KZ_ENOMEM;
      e->slots = ns;
      e->capslots = ncap;
    }
    s = (uint32_t)e->nslots++;
  }
  e->slots[s] = (struct eslot){c, NO_POS, NO_POS};
  *out = s;
  return 0;
}

static void et_slot_free(struct kz_sipp *e, uint32_t s) {
  e->slots[s].c = NULL;
  e->slots[s].next_free = e->free_slot;
  e->free_slot = s;
}

/* The first entry in (deadline, sequence) order that is due at `now`
 * and was started before the wake-up began (seq < snap), searching the
 * heap below index i (kz_env_run_timers' first_due); SIZE_MAX if none. */
static size_t et_first_due(const struct kz_sipp *e, size_t i, uint64_t now, uint64_t snap) {
  if (i >= e->thlen || e->th[i].key > now) return SIZE_MAX;
  if (e->th[i].seq < snap) return i;
  size_t l = et_first_due(e, 2 * i + 1, now, snap);
  size_t r = et_first_due(e, 2 * i + 2, now, snap);
  if (l == SIZE_MAX) return r;
  if (r == SIZE_MAX) return l;
  return et_less(&e->th[r], &e->th[l]) ? r : l;
}

/* The engine's kz_timer: fires what is due, as kz_env_run_timers did. */
static void tick_cb(void *arg) {
  struct kz_sipp *e = arg;
  uint64_t now = kz_env_now(e->env), snap = e->tseq;
  for (;;) {
    size_t i = et_first_due(e, 0, now, snap);
    if (i == SIZE_MAX) break;
    uint32_t slot = e->th[i].slot;
    et_remove_at(e, i);
    /* The callback may start, stop or free any timer, this one too. */
    if (slot == RATE_SLOT) rate_cb(e);
    else call_timer_cb(e->slots[slot].c);
  }
  et_sync(e);
}

/* ------------------------------------------------------------------ */
/* Variables                                                           */

static void var_clear(struct var *v) {
  kz_free(v->s);
  memset(v, 0, sizeof *v);
}

static bool var_isset(const struct var *v) {
  return v->type != VAR_UNSET && !(v->type == VAR_BOOL && !v->b);
}

static int var_set_str(struct var *v, const char *s, size_t len) {
  char *d = kz_strndup(s, len);
  if (!d) return KZ_ENOMEM;
  var_clear(v);
  v->type = VAR_STR;
  v->s = d;
  return 0;
}

static void var_set_dbl(struct var *v, double d) {
  var_clear(v);
  v->type = VAR_DBL;
  v->d = d;
}

static void var_set_bool(struct var *v, bool b) {
  var_clear(v);
  v->type = VAR_BOOL;
  v->b = b;
}

static double var_dbl(const struct var *v) {
  switch (v->type) {
  case VAR_DBL: return v->d;
  case VAR_BOOL: return v->b ? 1.0 : 0.0;
  case VAR_STR: return strtod(v->s, NULL);
  default: return 0.0;
  }
}

/* The text of a variable as SIPp prints it ("%lf" for numbers). */
static int var_text(const struct var *v, struct kz_buf *b) {
  switch (v->type) {
  case VAR_STR: return kz_buf_append_cstr(b, v->s);
  case VAR_DBL: return kz_buf_printf(b, "%lf", v->d);
  case VAR_BOOL: return kz_buf_append_cstr(b, v->b ? "true" : "false");
  default: return 0;
  }
}

/* ------------------------------------------------------------------ */
/* Stats helpers                                                       */

static void repart_add(struct kz_sipp_repartition *r, uint64_t ms) {
  uint32_t i = 0;
  while (i < r->nbounds && ms >= r->bound_ms[i]) i++;
  r->count[i]++;
  if (r->n == 0 || ms < r->min_ms) r->min_ms = ms;
  if (ms > r->max_ms) r->max_ms = ms;
  r->n++;
  r->sum_ms += ms;
}

static uint64_t now_ns(const struct kz_sipp *e) { return kz_env_now(e->env); }

static void bookkeeping(struct call *c, const struct cmd *cmd) {
  uint64_t now = now_ns(c->e);
  if (cmd->start_rtd) {
    c->rtd_start[cmd->start_rtd - 1] = now;
    c->rtd_done &= ~(1u << (cmd->start_rtd - 1));
  }
  if (cmd->stop_rtd) {
    int i = cmd->stop_rtd - 1;
    if (!(c->rtd_done & (1u << i))) {
      repart_add(&c->e->st.rtd[i], (now - c->rtd_start[i]) / NS_PER_MS);
      if (!cmd->repeat_rtd) c->rtd_done |= 1u << i;
    }
  }
}

/* ------------------------------------------------------------------ */
/* Call life cycle                                                     */

static void dead_purge(struct kz_sipp *e) {
  uint64_t now = now_ns(e);
  while (e->dead_head && e->dead_head->expiry <= now) {
    struct dead *d = e->dead_head;
    e->dead_head = d->next;
    if (!e->dead_head) e->dead_tail = NULL;
    kz_map_del_str(&e->dead, d->id);
    kz_free(d);
  }
}

static void dead_add(struct kz_sipp *e, const char *id) {
  if (!e->cfg.deadcall_wait_ms) return;
  size_t n = strlen(id);
  struct dead *d = kz_calloc(1, sizeof *d + n + 1);
  if (!d) return; /* best effort: late messages then count as out-of-call */
  memcpy(d->id, id, n + 1);
  if (kz_map_put(&e->dead, d->id, n, d, NULL)) {
    kz_free(d);
    return;
  }
  d->expiry = now_ns(e) + (uint64_t)e->cfg.deadcall_wait_ms * NS_PER_MS;
  if (e->dead_tail) e->dead_tail->next = d;
  else e->dead_head = d;
  e->dead_tail = d;
}

static void call_free(struct call *c) {
  if (c->slot != NO_POS) {
    et_stop(c->e, c->slot);
    et_slot_free(c->e, c->slot);
  }
  if (c->last_recv) kz_deref(c->last_recv);
  kz_buf_free(&c->last_recv_data);
  kz_buf_free(&c->rr_msg);
  kz_buf_free(&c->last_send);
  if (c->vars)
    for (size_t i = 0; i < c->e->sc->nvars; i++) var_clear(&c->vars[i]);
  kz_free(c->vars);
  if (c->peer_tag != c->peer_tag_buf) kz_free(c->peer_tag);
  kz_free(c->routes);
  kz_free(c->next_url);
  kz_free(c->auth_chal);
  kz_free(c);
}

static void check_done(struct kz_sipp *e) {
  if (kz_sipp_done(e) && !e->done_notified) {
    e->done_notified = true;
    if (e->cfg.on_done) e->cfg.on_done(e->cfg.done_arg);
  }
}

/* Ends a call: counts it, remembers its Call-ID for late messages,
 * frees it.  The caller must not touch c afterwards. */
static void call_end(struct call *c, bool ok, enum kz_sipp_fail why) {
  struct kz_sipp *e = c->e;
  if (ok) {
    e->st.calls_successful++;
  } else {
    e->st.calls_failed++;
    e->st.failed[why]++;
  }
  repart_add(&e->st.call_length, (now_ns(e) - c->started) / NS_PER_MS);
  e->st.calls_current--;
  kz_log(e->env, KZ_LOG_DEBUG, "sipp", "call %s %s%s%s at index %zu", c->callid,
         ok ? "successful" : "failed", ok ? "" : ": ", ok ? "" : kz_sipp_fail_name(why), c->idx);
  kz_map_del_str(&e->calls, c->key);
  dead_purge(e);
  dead_add(e, c->key);
  call_free(c);
  if (e->role == KZ_SIPP_UAC && !et_active(e, RATE_SLOT) &&
      (!e->cfg.max_calls || e->st.calls_created < e->cfg.max_calls))
    et_start(e, RATE_SLOT, now_ns(e)); /* a slot under -l may have opened */
  check_done(e);
}

static int send_raw(struct call *c, const void *data, size_t len) {
  struct kz_sipp *e = c->e;
  const struct kz_addr *to = e->role == KZ_SIPP_UAC ? &e->cfg.remote : &c->peer;
  return kz_udp_send(e->udp, to, data, len);
}

/* The text between the method and " SIP/2.0" of a request. */
static struct kz_slice start_line_uri(const struct kz_buf *b) {
  const char *p = (const char *)b->data, *end = p + b->len;
  const char *sp1 = memchr(p, ' ', b->len);
  const char *eol = memchr(p, '\r', b->len);
  if (!sp1 || !eol || sp1 > eol) return KZ_SLICE_LIT("");
  const char *sp2 = sp1 + 1;
  while (sp2 < eol && *sp2 != ' ') sp2++;
  (void)end;
  return kz_slice_make(sp1 + 1, (size_t)(sp2 - sp1 - 1));
}

static int put_hdr(struct kz_buf *b, const struct kz_sip_msg *m, enum kz_sip_hdr_id id, struct kz_slice want,
                   bool value_only);

/* The last message received (parsed again from its bytes when the call
 * dropped the parse while it waited), or NULL when there is none or it
 * cannot be parsed now (out of memory). */
static const struct kz_sip_msg *last_msg(struct call *c) {
  if (!c->last_recv && c->last_recv_kept) {
    /* Zero-copy: the bytes stay put until last_set drops this parse. */
    if (kz_sip_msg_parse(&c->last_recv, c->last_recv_data.data, c->last_recv_data.len, 0, NULL))
      c->last_recv = NULL;
  }
  return c->last_recv;
}

/* Makes m (received as data[0..len)) the call's last message. */
static void last_set(struct call *c, struct kz_sip_msg *m, const uint8_t *data, size_t len) {
  if (c->last_recv) kz_deref(c->last_recv);
  c->last_recv = kz_ref(m);
  kz_buf_reset(&c->last_recv_data);
  /* Without the bytes (no memory) the parse is simply kept. */
  c->last_recv_kept = kz_buf_append(&c->last_recv_data, data, len) == 0;
}

static int put_last_hdr(struct kz_buf *b, const struct kz_sip_msg *m, const char *name, bool value_only) {
  struct kz_slice want = kz_slice_cstr(name);
  return put_hdr(b, m, kz_sip_hdr_lookup(want), want, value_only);
}

/* SIPp's abortCall for a UAC: ACK a final error, CANCEL a pending
 * INVITE, BYE an established call (default messages "ack", "cancel",
 * "bye"). */
static void call_abort_msgs(struct call *c) {
  struct kz_sipp *e = c->e;
  if (e->role != KZ_SIPP_UAC || c->idx == 0) return;
  const struct kz_sip_msg *r = last_msg(c);
  if (!r) return;
  struct kz_buf *b = &e->scratch;
  struct kz_slice ruri = start_line_uri(&c->last_send);
  kz_buf_reset(b);
  int rc = 0;
  const char *what[2] = {NULL, NULL};
  if (!c->established && c->last_send_invite) {
    if (!r->is_request && r->status >= 400) what[0] = "ACK";
    else if (c->ack_pending) what[0] = "ACK", what[1] = "BYE";
    else what[0] = "CANCEL";
  } else {
    what[0] = "BYE";
  }
  for (int i = 0; i < 2 && what[i] && rc == 0; i++) {
    kz_buf_reset(b);
    bool bye = strcmp(what[i], "BYE") == 0;
    rc = kz_buf_printf(b, "%s %.*s SIP/2.0\r\n", what[i], (int)ruri.len, ruri.p);
    if (!rc && bye)
      rc = kz_buf_printf(b, "Via: SIP/2.0/UDP %s:%u;branch=z9hG4bK-%u-%llu-abort\r\n", e->local_ip,
                         e->cfg.local.port, e->cfg.pid, (unsigned long long)c->number);
    else if (!rc) rc = put_last_hdr(b, r, "Via", false) || kz_buf_append_cstr(b, "\r\n");
    if (!rc) rc = put_last_hdr(b, r, "From", false) || kz_buf_append_cstr(b, "\r\n");
    if (!rc) rc = put_last_hdr(b, r, "To", false) || kz_buf_append_cstr(b, "\r\n");
    if (!rc)
      rc = kz_buf_printf(b,
                         "Call-ID: %s\r\nCSeq: %u %s\r\nContact: <sip:sipp@%s:%u;transport=UDP>\r\n"
                         "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                         c->callid, r->cseq.num + (bye ? 1 : 0), what[i], e->local_ip,
                         e->cfg.local.port);
    if (!rc) send_raw(c, b->data, b->len);
  }
}

static void call_fail(struct call *c, enum kz_sipp_fail why) {
  call_abort_msgs(c);
  call_end(c, false, why);
}

/* The earliest thing the call waits for.  The call is idle from here to
 * its next event: the parse of its last message goes (its bytes stay). */
static void call_arm(struct call *c) {
  if (c->last_recv && c->last_recv_kept) c->last_recv = kz_deref(c->last_recv);
  uint64_t t = UINT64_MAX;
  if (c->next_retrans && c->next_retrans < t) t = c->next_retrans;
  if (c->paused && c->paused_until < t) t = c->paused_until;
  if (c->recv_timeout && c->recv_timeout < t) t = c->recv_timeout;
  if (c->e->cfg.call_timeout_ms) {
    uint64_t d = c->started + (uint64_t)c->e->cfg.call_timeout_ms * NS_PER_MS;
    if (d < t) t = d;
  }
  if (t == UINT64_MAX) et_stop(c->e, c->slot);
  else et_start(c->e, c->slot, t);
}

static void call_timer_cb(void *arg) {
  struct call *c = arg;
  if (call_run(c)) call_arm(c);
}

/* SIPp's call::next(): branch or step; false when the call ended. */
static bool call_next(struct call *c) {
  const struct kz_sipp_scenario *sc = c->e->sc;
  const struct cmd *cmd = &sc->cmds[c->idx];
  size_t n = c->idx + 1;
  if (cmd->next >= 0 && (cmd->test < 0 || var_isset(&c->vars[cmd->test]))) {
    if (cmd->chance_ppm >= 1000000 || kz_prng_chance_ppm(&c->e->prng, cmd->chance_ppm))
      n = (size_t)cmd->next;
  }
  c->idx = n;
  c->recv_timeout = 0;
  if (n >= sc->ncmds) {
    call_end(c, true, 0);
    return false;
  }
  return true;
}

static struct call *call_new(struct kz_sipp *e, const char *key, const char *callid) {
  size_t klen = strlen(key), clen = strlen(callid);
  struct call *c = kz_calloc(1, sizeof *c + klen + 1 + clen + 1);
  if (!c) return NULL;
  c->key = memcpy(c->strs, key, klen + 1);
  c->callid = memcpy(c->strs + klen + 1, callid, clen + 1);
  c->callid_len = clen;
  c->e = e;
  c->number = ++e->numbers;
  c->last_recv_index = c->rr_recv_index = c->rr_send_index = c->last_send_index = -1;
  c->started = now_ns(e);
  for (int i = 0; i < KZ_SIPP_MAX_RTDS; i++) c->rtd_start[i] = c->started;
  kz_buf_init(&c->rr_msg);
  kz_buf_init(&c->last_send);
  kz_buf_init(&c->last_recv_data);
  c->slot = NO_POS;
  if (et_slot_new(e, c, &c->slot)) goto fail;
  c->peer = e->cfg.remote;
  if (e->sc->nvars && !(c->vars = kz_calloc(e->sc->nvars, sizeof *c->vars))) goto fail;
  for (size_t i = 0; i < e->sc->nvars; i++)
    for (size_t g = 0; g < e->cfg.nglobals; g++)
      if (e->cfg.globals[g].name && strcmp(e->cfg.globals[g].name, e->sc->vars[i]) == 0) {
        const char *v = e->cfg.globals[g].value ? e->cfg.globals[g].value : "";
        if (var_set_str(&c->vars[i], v, strlen(v))) goto fail;
      }
  if (e->ncsv) c->field_line = e->csv_random ? (size_t)kz_prng_below(&e->prng, e->ncsv)
                                             : (size_t)((c->number - 1) % e->ncsv);
  if (kz_map_put(&e->calls, c->key, klen, c, NULL)) goto fail;
  e->st.calls_created++;
  e->st.calls_current++;
  return c;
fail:
  e->numbers--;
  call_free(c);
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Message building                                                    */

/* Decimal text of v written backwards ending at `end`; returns its
 * first character.  By hand: printf-style formatting was a tenth of a
 * simulated call (bench/sim). */
static char *dec_u64(char *end, uint64_t v) {
  /* Two digits a step from a table of pairs. */
  static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                              "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                              "8081828384858687888990919293949596979899";
  char *p = end;
  while (v >= 100) {
    unsigned d = (unsigned)(v % 100) * 2;
    v /= 100;
    p -= 2;
    memcpy(p, pairs + d, 2);
  }
  if (v >= 10) {
    p -= 2;
    memcpy(p, pairs + v * 2, 2);
  } else {
    *--p = (char)('0' + v);
  }
  return p;
}

/* kz_buf_append with the common case (room already there) inline:
 * template expansion appends ~30 short pieces per message, and the call
 * into buf.c cost more than the copy. */
static inline int put(struct kz_buf *b, const void *p, size_t n) {
  /* kz_buf keeps one byte beyond len for the NUL: room means
   * len + n + 1 <= cap (cap == 0 for an empty buffer never fits).  The
   * NUL itself is left to the end of the message (expand writes it, and
   * nothing reads the buffer as a C string before): ~30 stores less per
   * message. */
  if (n < b->cap - b->len) {
    if (n) memcpy(b->data + b->len, p, n); /* p may be NULL when n is 0 */
    b->len += n;
    return 0;
  }
  return kz_buf_append(b, p, n);
}

/* Appends the decimal text of v ("%lld"). */
static int put_i64(struct kz_buf *b, int64_t v) {
  char num[24];
  char *end = num + sizeof num;
  char *p = dec_u64(end, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);
  if (v < 0) *--p = '-';
  return put(b, p, (size_t)(end - p));
}

/* A header value with every fold replaced by one SP.  Folds always hold
 * an LF (the parser refuses a CR that does not start CRLF), so a value
 * without CR or LF, the usual case, is copied as it is. */
static int put_value(struct kz_buf *b, struct kz_slice v) {
  if (v.p && !memchr(v.p, '\n', v.len) && !memchr(v.p, '\r', v.len)) return put(b, v.p, v.len);
  return kz_sip_unfold(b, v);
}

/* Every header `want` (of id `id`, KZ_SIP_HDR_OTHER for one matched by
 * name) of m, as [last_<want>:] shows them. */
static int put_hdr(struct kz_buf *b, const struct kz_sip_msg *m, enum kz_sip_hdr_id id, struct kz_slice want,
                   bool value_only) {
  if (!m) return 0;
  bool first = true;
  int rc = 0;
  /* A known header: follow its chain instead of scanning every header. */
  const struct kz_sip_hdr *h = id != KZ_SIP_HDR_OTHER ? kz_sip_msg_hdr(m, id) : NULL;
  for (size_t i = 0; rc == 0; i++) {
    if (id != KZ_SIP_HDR_OTHER) {
      if (i) h = kz_sip_msg_hdr_next(m, h);
      if (!h) break;
    } else {
      if (i >= m->nhdrs) break;
      h = &m->hdrs[i];
      if (!kz_slice_caseeq(h->name, want)) continue;
    }
    if (!first) rc = kz_buf_append_cstr(b, value_only ? ", " : "\r\n");
    if (!rc && !value_only && (put(b, h->name.p, h->name.len) || put(b, ": ", 2)))
      rc = KZ_ENOMEM;
    if (!rc) rc = put_value(b, h->value);
    first = false;
  }
  return rc;
}

static void civil(int64_t days, int *y, int *m, int *d) {
  /* Howard Hinnant's days_from_civil inverse: no gmtime in sans-I/O code. */
  days += 719468;
  int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  int64_t doe = days - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int put_timestamp(struct kz_buf *b, int64_t wall_ns) {
  int64_t s = wall_ns / 1000000000, us = (wall_ns % 1000000000) / 1000;
  int y, mo, d;
  civil(s / 86400, &y, &mo, &d);
  int64_t sod = s % 86400;
  return kz_buf_printf(b, "%04d-%02d-%02d\t%02d:%02d:%02d.%06lld\t%lld.%06lld", y, mo, d,
                       (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (long long)us,
                       (long long)s, (long long)us);
}

/* A write cursor into a kz_buf for template expansion: pieces are
 * copied at w, and the buffer's len is only brought up to date (sync)
 * around the few pieces written through kz_buf calls and at the end.
 * Keeping len and the room check in registers instead of the buffer
 * saved about a third of expand's own instructions (bench/sim). */
struct wcur {
  struct kz_buf *b;
  uint8_t *w;   /* next byte */
  uint8_t *lim; /* last byte of room: kz_buf keeps one for the NUL */
};

static inline void wc_load(struct wcur *c) {
  c->w = c->b->data + c->b->len;
  c->lim = c->b->data + c->b->cap - 1;
}

static inline void wc_sync(struct wcur *c) { c->b->len = (size_t)(c->w - c->b->data); }

static int wc_grow(struct wcur *c, size_t n) {
  wc_sync(c);
  if (kz_buf_reserve(c->b, n)) return KZ_ENOMEM;
  wc_load(c);
  return 0;
}

/* Copies n bytes (most template pieces are short: kz_copy_small). */
static inline int wc_put(struct wcur *c, const void *src, size_t n) {
  if ((size_t)(c->lim - c->w) < n && wc_grow(c, n)) return KZ_ENOMEM;
  c->w = kz_copy_small(c->w, src, n);
  return 0;
}

/* The decimal text of v ("%llu"), or with a '-' when neg. */
static inline int wc_dec(struct wcur *c, uint64_t v, bool neg) {
  if ((size_t)(c->lim - c->w) < 21 && wc_grow(c, 21)) return KZ_ENOMEM;
  char num[24];
  char *end = num + sizeof num;
  char *p = dec_u64(end, v);
  if (neg) *--p = '-';
  size_t n = (size_t)(end - p);
  uint8_t *d = c->w;
  /* At most 21 bytes: three fixed-size moves cover it. */
  if (n >= 8) {
    memcpy(d, p, 8);
    if (n > 16) memcpy(d + 8, p + 8, 8);
    memcpy(d + n - 8, p + n - 8, 8);
  } else if (n >= 4) {
    memcpy(d, p, 4);
    memcpy(d + n - 4, p + n - 4, 4);
  } else {
    for (size_t i = 0; i < n; i++) d[i] = (uint8_t)p[i];
  }
  c->w = d + n;
  return 0;
}

static inline int wc_i64(struct wcur *c, int64_t v) {
  return wc_dec(c, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, v < 0);
}

/* Expands template t of command index `ci` into out.  Returns 0,
 * KZ_ENOMEM, or KZ_EPROTO when [authentication] has no challenge. */
static int expand(struct call *c, int ci, const struct tmpl *t, const char *method, struct kz_buf *out) {
  struct kz_sipp *e = c->e;
  const struct kz_sipp_cfg *g = &e->cfg;
  bool suppress = false;
  size_t len_pos = SIZE_MAX, auth_pos = SIZE_MAX;
  int len_off = 0;
  const struct tcomp *auth = NULL;
  int rc = 0;
  char ip[KZ_ADDR_STRLEN];
  kz_buf_reset(out);
  /* One allocation up front instead of doubling from 64 bytes for every
   * new call's buffer: 1 KiB (kz_buf rounds 1000 + NUL up to it) holds
   * a typical message (measuring the template's literal text for a
   * closer figure cost a pass over it for every message, and a larger
   * block costs more to zero).  A buffer that already has 1 KiB is left
   * as it is; any buffer grows as needed. */
  if (out->cap < 1024 && kz_buf_reserve(out, 1000)) return KZ_ENOMEM;
  struct wcur wc = {.b = out};
  wc_load(&wc);
  for (size_t i = 0; i < t->n && rc == 0; i++) {
    const struct tcomp *k = &t->c[i];
    size_t before = (size_t)(wc.w - out->data); /* an offset: the buffer may move */
    bool may_suppress = false;
    switch (k->type) {
    case TC_LIT: {
      const char *p = k->text;
      size_t n = k->len;
      if (suppress) {
        while (n && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++, n--;
      }
      rc = wc_put(&wc, p, n);
      break;
    }
    case TC_SERVICE: rc = wc_put(&wc, g->service, e->service_len); break;
    case TC_REMOTE_IP:
      if (e->role == KZ_SIPP_UAS && c->peer.family == 4) {
        /* kz_addr_format_ip's "a.b.c.d", without snprintf */
        char *end = ip + sizeof ip, *p = end;
        for (int j = 3; j >= 0; j--) {
          p = dec_u64(p, c->peer.ip[j]);
          if (j) *--p = '.';
        }
        rc = wc_put(&wc, p, (size_t)(end - p));
      } else if (e->role == KZ_SIPP_UAS) {
        kz_addr_format_ip(&c->peer, ip, sizeof ip);
        rc = wc_put(&wc, ip, strlen(ip));
      } else {
        rc = wc_put(&wc, e->remote_ip, e->remote_ip_len);
      }
      break;
    case TC_REMOTE_PORT:
      if (e->role != KZ_SIPP_UAS && k->offset == 0) rc = wc_put(&wc, e->remote_port_txt, e->remote_port_len);
      else rc = wc_i64(&wc, (e->role == KZ_SIPP_UAS ? c->peer.port : g->remote.port) + k->offset);
      break;
    case TC_LOCAL_IP: rc = wc_put(&wc, e->local_ip, e->local_ip_len); break;
    case TC_LOCAL_IP_TYPE: rc = wc_put(&wc, g->local.family == 6 ? "6" : "4", 1); break;
    case TC_LOCAL_PORT:
      if (k->offset == 0) rc = wc_put(&wc, e->local_port_txt, e->local_port_len);
      else rc = wc_i64(&wc, g->local.port + k->offset);
      break;
    case TC_TRANSPORT: rc = wc_put(&wc, "UDP", 3); break;
    case TC_MEDIA_IP: rc = wc_put(&wc, e->media_ip, e->media_ip_len); break;
    case TC_MEDIA_IP_TYPE: rc = wc_put(&wc, g->media.family == 6 ? "6" : "4", 1); break;
    case TC_MEDIA_PORT: rc = wc_i64(&wc, g->media.port + k->offset); break;
    case TC_AUTO_MEDIA_PORT:
      rc = wc_i64(&wc, (int)(g->media.port + (2 * (c->number - 1)) % 10000) + k->offset);
      break;
    case TC_BRANCH:
      /* "z9hG4bK-%u-%llu-%d" */
      if (wc_put(&wc, "z9hG4bK-", 8) || wc_dec(&wc, g->pid, false) || wc_put(&wc, "-", 1) ||
          wc_dec(&wc, c->number, false) || wc_put(&wc, "-", 1) || wc_i64(&wc, ci + k->offset))
        rc = KZ_ENOMEM;
      break;
    case TC_CALL_ID: rc = wc_put(&wc, c->callid, c->callid_len); break;
    case TC_CALL_NUMBER: rc = wc_dec(&wc, c->number, false); break;
    case TC_CSEQ: rc = wc_dec(&wc, (unsigned)((int64_t)c->cseq + k->offset), false); break;
    case TC_LEN:
      len_pos = (size_t)(wc.w - out->data);
      len_off = k->offset;
      rc = wc_put(&wc, "     ", 5);
      break;
    case TC_PEER_TAG_PARAM:
      if (c->peer_tag && (wc_put(&wc, ";tag=", 5) || wc_put(&wc, c->peer_tag, strlen(c->peer_tag)))) rc = KZ_ENOMEM;
      break;
    case TC_PID: rc = wc_dec(&wc, g->pid, false); break;
    case TC_CLOCK_TICK: rc = wc_dec(&wc, (now_ns(e) - e->start) / NS_PER_MS, false); break;
    default:
      /* The rest goes through kz_buf calls: len brought up to date
       * around them. */
      wc_sync(&wc);
      switch (k->type) {
      case TC_TIMESTAMP: rc = put_timestamp(out, kz_env_wall(e->env)); break;
      case TC_ROUTES:
        if (c->routes) rc = kz_buf_printf(out, "Route: %s", c->routes);
        else may_suppress = true;
        break;
      case TC_NEXT_URL:
        if (c->next_url) rc = kz_buf_append_cstr(out, c->next_url);
        break;
      case TC_LAST_HDR:
        /* The id was looked up when the scenario was loaded. */
        rc = put_hdr(out, last_msg(c), (enum kz_sip_hdr_id)k->num, kz_slice_make(k->text, k->len), k->value_only);
        may_suppress = true;
        break;
      case TC_LAST_REQUEST_URI:
        if (last_msg(c) && c->last_recv->is_request)
          rc = kz_buf_append_slice(out, c->last_recv->ruri.raw);
        break;
      case TC_LAST_CSEQ_NUMBER:
        rc = put_i64(out, (int)(last_msg(c) ? c->last_recv->cseq.num : 0) + k->offset);
        break;
      case TC_FIELD:
        if (e->ncsv && (size_t)k->num < e->csv[c->field_line].nf)
          rc = kz_buf_append_cstr(out, e->csv[c->field_line].f[k->num]);
        may_suppress = true;
        break;
      case TC_VAR:
        rc = var_text(&c->vars[k->num], out);
        may_suppress = true;
        break;
      case TC_AUTH:
        if (auth) return KZ_EPROTO;
        auth = k;
        auth_pos = out->len;
        break;
      default: break;
      }
      wc_load(&wc);
      break;
    }
    if (k->type != TC_LIT) suppress = false;
    /* SIPp: an empty expansion at the start of a line swallows the rest
     * of the line's leading white space, so the line disappears. */
    if (may_suppress && (size_t)(wc.w - out->data) == before && before && wc.w[-1] == '\n') suppress = true;
    else if (k->type == TC_LIT) suppress = false;
  }
  wc_sync(&wc);
  if (rc) return rc;
  out->data[out->len] = 0; /* the cursor leaves it out; cap > len always */
  if (len_pos != SIZE_MAX) {
    const char *body = NULL;
    const uint8_t *q = out->data, *qe = out->data + out->len;
    while (qe - q >= 4 && (q = memchr(q, '\r', (size_t)(qe - q - 3))) != NULL) {
      if (memcmp(q, "\r\n\r\n", 4) == 0) {
        body = (const char *)q + 4;
        break;
      }
      q++;
    }
    long blen = body ? (long)((const char *)out->data + out->len - body) + len_off : 0;
    if (blen < 0) blen = 0;
    /* "%5ld": right-aligned in the 5-byte placeholder. */
    char num[24];
    char *nend = num + sizeof num;
    char *d = dec_u64(nend, (uint64_t)blen);
    while (nend - d < 5) *--d = ' ';
    int n = (int)(nend - d);
    memmove(num, d, (size_t)n);
    if (n == 5) memcpy(out->data + len_pos, num, 5);
    else {
      /* Longer than the placeholder: splice. */
      struct kz_buf tmp;
      kz_buf_init(&tmp);
      if (kz_buf_append(&tmp, out->data, len_pos) || kz_buf_append(&tmp, num, (size_t)n) ||
          kz_buf_append(&tmp, out->data + len_pos + 5, out->len - len_pos - 5)) {
        kz_buf_free(&tmp);
        return KZ_ENOMEM;
      }
      if (auth_pos != SIZE_MAX && auth_pos > len_pos) auth_pos += (size_t)n - 5;
      kz_buf_free(out);
      *out = tmp;
    }
  }
  if (auth) {
    if (!c->auth_chal) return KZ_EPROTO;
    struct kz_buf h;
    kz_buf_init(&h);
    char uri[KZ_ADDR_STRLEN + 16], cnonce[17];
    snprintf(uri, sizeof uri, "sip:%s:%u", e->remote_ip, (unsigned)g->remote.port);
    kz_prng_hex(&e->prng, cnonce, 16);
    cnonce[16] = '\0';
    const char *user = auth->text ? auth->text : g->auth_user;
    const char *pass = auth->text2 ? auth->text2 : g->auth_pass;
    rc = kz_buf_append_cstr(&h, c->auth_code == 407 ? "Proxy-Authorization: " : "Authorization: ");
    if (!rc)
      rc = kz_sipp_auth_credentials(&h, kz_slice_cstr(c->auth_chal), kz_slice_cstr(user),
                                    kz_slice_cstr(pass), kz_slice_cstr(method), kz_slice_cstr(uri),
                                    ++c->nonce_count, kz_slice_make(cnonce, 16));
    struct kz_buf tmp;
    kz_buf_init(&tmp);
    if (!rc && (kz_buf_append(&tmp, out->data, auth_pos) || kz_buf_append(&tmp, h.data, h.len) ||
                kz_buf_append(&tmp, out->data + auth_pos, out->len - auth_pos)))
      rc = KZ_ENOMEM;
    kz_buf_free(&h);
    if (rc) {
      kz_buf_free(&tmp);
      return rc == KZ_ENOMEM ? rc : KZ_EPROTO;
    }
    kz_buf_free(out);
    *out = tmp;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Actions                                                             */

/* Runs the actions of cmd on message bytes msg (sent or received).
 * Returns 0, or 1 + the failure reason. */
static int run_actions(struct call *c, const struct cmd *cmd, const uint8_t *msg, size_t len,
                       const struct kz_sip_msg *parsed, bool *jumped) {
  struct kz_sipp *e = c->e;
  struct kz_buf txt;
  kz_buf_init(&txt);
  int result = 0;
  for (size_t i = 0; i < cmd->nacts && result == 0; i++) {
    const struct action *a = &cmd->acts[i];
    kz_buf_reset(&txt);
    switch (a->type) {
    case ACT_EREG: {
      int rc = 0;
      if (a->where == EREG_MSG && msg) rc = kz_buf_append(&txt, msg, len);
      else if (a->where == EREG_BODY && parsed) rc = kz_buf_append_slice(&txt, parsed->body);
      else if (a->where == EREG_VAR) rc = var_text(&c->vars[a->var_in], &txt);
      else if (a->where == EREG_HDR && parsed) {
        struct kz_slice want = kz_slice_cstr(a->header);
        enum kz_sip_hdr_id id = kz_sip_hdr_lookup(want);
        int seen = 0;
        for (size_t h = 0; h < parsed->nhdrs; h++) {
          const struct kz_sip_hdr *hd = &parsed->hdrs[h];
          if (id != KZ_SIP_HDR_OTHER ? hd->id != id : !kz_slice_caseeq(hd->name, want)) continue;
          if (++seen == a->occurrence) {
            rc = kz_sip_unfold(&txt, hd->value);
            break;
          }
        }
      }
      if (rc || kz_buf_reserve(&txt, 1)) {
        result = 1 + KZ_SIPP_FAIL_SEND;
        break;
      }
      txt.data[txt.len] = '\0';
      regmatch_t m[10];
      bool hit = regexec(&a->re, (const char *)txt.data, 10, m, 0) == 0;
      for (size_t v = 0; v < a->nassign; v++) {
        struct var *var = &c->vars[a->assign[v]];
        if (hit && v < 10 && m[v].rm_so >= 0) {
          if (var_set_str(var, (const char *)txt.data + m[v].rm_so, (size_t)(m[v].rm_eo - m[v].rm_so))) {
            result = 1 + KZ_SIPP_FAIL_SEND;
            break;
          }
        } else {
          var_clear(var);
        }
      }
      if (!hit && a->check_it) result = 1 + KZ_SIPP_FAIL_REGEXP_NOMATCH;
      if (hit && a->check_inverse) result = 1 + KZ_SIPP_FAIL_REGEXP_MATCH;
      break;
    }
    case ACT_ASSIGN:
    case ACT_ADD:
    case ACT_SUBTRACT:
    case ACT_MULTIPLY:
    case ACT_DIVIDE: {
      double rhs = a->has_value ? a->value : var_dbl(&c->vars[a->var_in]);
      double cur = var_dbl(&c->vars[a->var_out]);
      double r = a->type == ACT_ASSIGN ? rhs : a->type == ACT_ADD ? cur + rhs
                 : a->type == ACT_SUBTRACT ? cur - rhs : a->type == ACT_MULTIPLY ? cur * rhs
                 : rhs != 0.0 ? cur / rhs : 0.0;
      var_set_dbl(&c->vars[a->var_out], r);
      break;
    }
    case ACT_ASSIGNSTR:
      if (expand(c, (int)c->idx, &a->msg, "", &txt) ||
          var_set_str(&c->vars[a->var_out], (const char *)txt.data, txt.len))
        result = 1 + KZ_SIPP_FAIL_SEND;
      break;
    case ACT_TEST: {
      double x = var_dbl(&c->vars[a->var_in]);
      double y = a->has_value ? a->value : var_dbl(&c->vars[a->var_in2]);
      bool r = a->cmp == CMP_EQ ? x == y : a->cmp == CMP_NE ? x != y : a->cmp == CMP_GT ? x > y
               : a->cmp == CMP_LT ? x < y : a->cmp == CMP_GE ? x >= y : x <= y;
      if (a->var_out >= 0) var_set_bool(&c->vars[a->var_out], r);
      if ((a->check_it && !r) || (a->check_inverse && r)) result = 1 + KZ_SIPP_FAIL_TEST;
      break;
    }
    case ACT_STRCMP: {
      struct kz_buf y;
      kz_buf_init(&y);
      int rc = var_text(&c->vars[a->var_in], &txt);
      if (!rc) rc = a->has_value ? kz_buf_append_cstr(&y, a->str_value) : var_text(&c->vars[a->var_in2], &y);
      if (!rc) rc = kz_buf_reserve(&txt, 1) || kz_buf_reserve(&y, 1);
      if (rc) {
        kz_buf_free(&y);
        result = 1 + KZ_SIPP_FAIL_SEND;
        break;
      }
      txt.data[txt.len] = '\0';
      y.data[y.len] = '\0';
      int r = strcmp((const char *)txt.data, (const char *)y.data);
      kz_buf_free(&y);
      if (a->var_out >= 0) var_set_dbl(&c->vars[a->var_out], r < 0 ? -1.0 : r > 0 ? 1.0 : 0.0);
      if ((a->check_it && r != 0) || (a->check_inverse && r == 0)) result = 1 + KZ_SIPP_FAIL_TEST;
      break;
    }
    case ACT_LOG:
    case ACT_WARNING:
    case ACT_ERROR:
      if (expand(c, (int)c->idx, &a->msg, "", &txt) == 0)
        kz_log(e->env, a->type == ACT_LOG ? KZ_LOG_INFO : a->type == ACT_WARNING ? KZ_LOG_WARN : KZ_LOG_ERROR,
               "sipp", "%.*s", (int)txt.len, (const char *)txt.data);
      break;
    case ACT_JUMP: {
      double v = a->has_value ? a->value : var_dbl(&c->vars[a->var_in]);
      if (v < 0) v = 0;
      c->idx = (size_t)v;
      *jumped = true;
      break;
    }
    case ACT_GETTIMEOFDAY: {
      int64_t w = kz_env_wall(e->env);
      var_set_dbl(&c->vars[a->var_out], (double)(w / 1000000000));
      var_set_dbl(&c->vars[a->var_in], (double)((w % 1000000000) / 1000));
      break;
    }
    }
  }
  kz_buf_free(&txt);
  return result;
}

/* ------------------------------------------------------------------ */
/* Running a call                                                      */

static bool call_send(struct call *c, const struct cmd *cmd) {
  struct kz_sipp *e = c->e;
  if (c->next_retrans) return true; /* SIPp waits for the last one to be answered */
  bookkeeping(c, cmd);
  if (cmd->is_request && !cmd->is_ack && !cmd->is_cancel) c->cseq++;
  int ci = (int)c->idx;
  if (c->rr_in_last_send) {
    /* last_send is about to be rebuilt: its bytes move to rr_msg, and
     * rr_msg's old buffer is reused for the new message. */
    struct kz_buf t = c->rr_msg;
    c->rr_msg = c->last_send;
    c->last_send = t;
    c->rr_in_last_send = false;
  }
  int rc = expand(c, ci, &cmd->tmpl, cmd->method, &c->last_send);
  if (rc) {
    kz_log(e->env, KZ_LOG_WARN, "sipp", "call %s: cannot build message %d: %s", c->callid, ci,
           rc == KZ_EPROTO ? "[authentication] without a 401/407 challenge" : kz_strerror(rc));
    call_end(c, false, KZ_SIPP_FAIL_SEND);
    return false;
  }
  c->last_send_index = ci;
  c->last_send_invite = cmd->is_invite;
  if (cmd->is_ack) {
    c->established = true;
    c->ack_pending = false;
  }
  if (cmd->lost_ppm && kz_prng_chance_ppm(&e->prng, cmd->lost_ppm)) {
    e->ms[ci].lost++;
  } else if ((rc = send_raw(c, c->last_send.data, c->last_send.len))) {
    kz_log(e->env, KZ_LOG_WARN, "sipp", "call %s: send failed: %s", c->callid, kz_strerror(rc));
    call_end(c, false, KZ_SIPP_FAIL_SEND);
    return false;
  }
  if (c->last_recv_index >= 0 && c->last_recv_fresh) {
    /* Sent just after a reception: a retransmission of that message
     * will get this one again (SIPp's recv_retrans_*).  Only the first
     * send after it: a later one (the 200 after a 180) must not replace
     * the pair with a zero hash, or a retransmitted INVITE whose 180 and
     * 200 were both lost is taken for an unexpected message (SIPp tests
     * last_recv_hash too). */
    c->rr_hash = c->last_recv_kept ? kz_hash64(c->last_recv_data.data, c->last_recv_data.len, 0)
                                   : c->last_recv_hash;
    c->rr_len = c->last_recv_len;
    c->rr_recv_index = c->last_recv_index;
    c->rr_send_index = ci;
    c->rr_in_last_send = true;
    c->last_recv_fresh = false;
  }
  if (cmd->retrans_ms && !e->cfg.no_retrans) {
    c->next_retrans = now_ns(e) + (uint64_t)cmd->retrans_ms * NS_PER_MS;
    c->nb_retrans = 0;
    c->retrans_delay_ms = cmd->retrans_ms;
  } else {
    c->next_retrans = 0;
  }
  bool jumped = false;
  int r = run_actions(c, cmd, c->last_send.data, c->last_send.len, NULL, &jumped);
  e->ms[ci].sent++;
  if (r) {
    call_fail(c, (enum kz_sipp_fail)(r - 1));
    return false;
  }
  if (jumped) return true;
  return call_next(c);
}

/* Runs the call until it waits; false when it ended. */
static bool call_run(struct call *c) {
  struct kz_sipp *e = c->e;
  const struct kz_sipp_scenario *sc = e->sc;
  for (;;) {
    uint64_t now = now_ns(e);
    if (c->idx >= sc->ncmds) {
      call_end(c, true, 0);
      return false;
    }
    if (e->cfg.call_timeout_ms && now >= c->started + (uint64_t)e->cfg.call_timeout_ms * NS_PER_MS) {
      if (c->timewait) call_end(c, true, 0);
      else call_fail(c, KZ_SIPP_FAIL_CALL_TIMEOUT);
      return false;
    }
    if (c->next_retrans && now >= c->next_retrans) {
      c->nb_retrans++;
      uint32_t allowed = c->last_send_invite ? e->cfg.max_invite_retrans : e->cfg.max_non_invite_retrans;
      if (c->nb_retrans > allowed) {
        e->ms[c->last_send_index].timeout++;
        int to = sc->cmds[c->last_send_index].on_timeout;
        c->next_retrans = 0;
        if (to >= 0) {
          c->idx = (size_t)to;
          c->recv_timeout = 0;
          c->paused = false;
          continue;
        }
        call_fail(c, KZ_SIPP_FAIL_MAX_RETRANS);
        return false;
      }
      c->retrans_delay_ms *= 2;
      if (!c->last_send_invite && c->retrans_delay_ms > e->cfg.t2_ms) c->retrans_delay_ms = e->cfg.t2_ms;
      send_raw(c, c->last_send.data, c->last_send.len);
      e->ms[c->last_send_index].sent_retrans++;
      e->st.retransmissions++;
      c->next_retrans = now + c->retrans_delay_ms * NS_PER_MS;
    }
    if (c->paused) {
      if (now < c->paused_until) return true;
      c->paused = false;
      if (!call_next(c)) return false;
      continue;
    }
    const struct cmd *cmd = &sc->cmds[c->idx];
    if (cmd->condexec >= 0) {
      bool run = var_isset(&c->vars[cmd->condexec]);
      if (cmd->condexec_inverse) run = !run;
      if (!run) {
        if (!call_next(c)) return false;
        continue;
      }
    }
    bool jumped = false;
    int r;
    switch (cmd->type) {
    case CMD_PAUSE: {
      uint64_t ms = cmd->pause_ms;
      if (cmd->pause == PAUSE_DEFAULT) ms = e->cfg.pause_ms;
      else if (cmd->pause == PAUSE_UNIFORM) ms = kz_prng_range(&e->prng, cmd->pause_min, cmd->pause_max);
      else if (cmd->pause == PAUSE_VAR) {
        double d = var_dbl(&c->vars[cmd->pause_var]);
        ms = d < 1 ? 0 : d > 2147483647.0 ? 2147483647u : (uint64_t)d;
      }
      c->paused = true;
      c->paused_until = now + ms * NS_PER_MS;
      c->timewait = cmd->timewait;
      e->ms[c->idx].sessions++;
      bookkeeping(c, cmd);
      r = run_actions(c, cmd, NULL, 0, NULL, &jumped);
      if (r) {
        call_fail(c, (enum kz_sipp_fail)(r - 1));
        return false;
      }
      if (jumped) c->paused = false;
      continue;
    }
    case CMD_NOP:
      bookkeeping(c, cmd);
      r = run_actions(c, cmd, NULL, 0, NULL, &jumped);
      if (r) {
        call_fail(c, (enum kz_sipp_fail)(r - 1));
        return false;
      }
      if (!jumped && !call_next(c)) return false;
      continue;
    case CMD_SEND:
      if (c->next_retrans) return true;
      if (!call_send(c, cmd)) return false;
      continue;
    case CMD_RECV: {
      if (c->recv_timeout) {
        if (now < c->recv_timeout) return true;
        c->recv_timeout = 0;
        e->ms[c->idx].timeout++;
        if (cmd->on_timeout < 0) {
          call_fail(c, KZ_SIPP_FAIL_RECV_TIMEOUT);
          return false;
        }
        c->idx = (size_t)cmd->on_timeout;
        continue;
      }
      uint32_t to = cmd->timeout_ms ? cmd->timeout_ms : e->cfg.recv_timeout_ms;
      if (to) c->recv_timeout = now + (uint64_t)to * NS_PER_MS;
      return true;
    }
    }
  }
}

/* ------------------------------------------------------------------ */
/* Incoming messages                                                   */

static bool recv_matches(const struct cmd *cmd, const struct kz_sip_msg *m) {
  if (cmd->type != CMD_RECV) return false;
  if (cmd->recv_response) {
    if (m->is_request || m->status != cmd->recv_response) return false;
    if (cmd->cseq_methods && strcmp(cmd->cseq_methods, " ") != 0) {
      /* " METHOD " in the list (by hand: this runs for every response). */
      char want[40];
      size_t n = m->cseq.method_text.len;
      if (n + 3 > sizeof want) return false;
      want[0] = ' ';
      memcpy(want + 1, m->cseq.method_text.p, n);
      want[n + 1] = ' ';
      want[n + 2] = '\0';
      return strstr(cmd->cseq_methods, want) != NULL;
    }
    return true;
  }
  if (!m->is_request) return false;
  if (cmd->regexp_match) {
    char meth[40];
    snprintf(meth, sizeof meth, "%.*s", (int)m->method_text.len, m->method_text.p);
    return regexec(&cmd->req_re, meth, 0, NULL, 0) == 0;
  }
  return kz_slice_eq_cstr(m->method_text, cmd->recv_request);
}

static int set_str(char **dst, struct kz_slice s) {
  char *d = kz_slice_dup(s);
  if (!d) return KZ_ENOMEM;
  kz_free(*dst);
  *dst = d;
  return 0;
}

/* Keeps tag as the call's peer tag (as set_str would, in the call's own
 * buffer when it fits).  Without memory for a long one the old tag
 * stays, as set_str leaves it. */
static void set_peer_tag(struct call *c, struct kz_slice tag) {
  if (tag.len < sizeof c->peer_tag_buf) {
    if (c->peer_tag != c->peer_tag_buf) kz_free(c->peer_tag);
    memcpy(c->peer_tag_buf, tag.p, tag.len);
    c->peer_tag_buf[tag.len] = '\0';
    c->peer_tag = c->peer_tag_buf;
    return;
  }
  char *d = kz_slice_dup(tag);
  if (!d) return;
  if (c->peer_tag != c->peer_tag_buf) kz_free(c->peer_tag);
  c->peer_tag = d;
}

static void record_routes(struct call *c, const struct kz_sip_msg *m) {
  struct kz_buf b;
  kz_buf_init(&b);
  int rc = 0;
  /* A UAC reverses the Record-Route set of a response (RFC 3261 12.1.2). */
  for (size_t i = 0; i < m->nrroutes && rc == 0; i++) {
    size_t k = m->is_request ? i : m->nrroutes - 1 - i;
    if (i) rc = kz_buf_append_cstr(&b, ", ");
    if (!rc) rc = kz_sip_unfold(&b, m->rroutes[k].raw);
  }
  if (!rc && b.len) {
    kz_free(c->routes);
    c->routes = kz_slice_dup(kz_buf_slice(&b));
  }
  kz_buf_free(&b);
  if (m->ncontacts) set_str(&c->next_url, m->contacts[0].uri.raw);
}

static void process_incoming(struct call *c, struct kz_sip_msg *m, const uint8_t *data, size_t len) {
  struct kz_sipp *e = c->e;
  const struct kz_sipp_scenario *sc = e->sc;
  if (!e->cfg.no_retrans) {
    /* Fingerprints are only compared with this call's earlier ones,
     * never traced.  A length that differs rules a message out without
     * hashing it. */
    if (c->rr_recv_index >= 0 && c->rr_len == len && c->rr_hash == kz_hash64(data, len, 0)) {
      e->ms[c->rr_recv_index].recv_retrans++;
      const struct kz_buf *rr = c->rr_in_last_send ? &c->last_send : &c->rr_msg;
      send_raw(c, rr->data, rr->len);
      e->ms[c->rr_send_index].sent_retrans++;
      e->st.retransmissions++;
      return;
    }
    if (c->last_recv_index >= 0 && c->last_recv_fresh && c->last_recv_len == len &&
        (c->last_recv_kept ? memcmp(c->last_recv_data.data, data, len) == 0
                           : c->last_recv_hash == kz_hash64(data, len, 0))) {
      e->ms[c->last_recv_index].recv_retrans++;
      return;
    }
  }
  int found = -1;
  for (size_t i = c->idx; i < sc->ncmds; i++) {
    if (recv_matches(&sc->cmds[i], m)) {
      found = (int)i;
      break;
    }
    if (!sc->cmds[i].optional) break;
  }
  if (found < 0) {
    bool contig = true;
    for (size_t i = c->idx; i-- > 0;) {
      const struct cmd *cmd = &sc->cmds[i];
      if (!cmd->optional) contig = false;
      if (!recv_matches(cmd, m)) continue;
      if (contig || cmd->optional == 2) {
        found = (int)i;
        break;
      }
      /* A late response of an old INVITE transaction: ACK it again. */
      if (!m->is_request && m->cseq.method == KZ_SIP_METHOD_INVITE && i + 1 < sc->ncmds &&
          sc->cmds[i + 1].type == CMD_SEND && sc->cmds[i + 1].is_ack) {
        struct kz_buf b;
        kz_buf_init(&b);
        if (expand(c, (int)i + 1, &sc->cmds[i + 1].tmpl, "ACK", &b) == 0) send_raw(c, b.data, b.len);
        kz_buf_free(&b);
        e->ms[i].recv_retrans++;
        return;
      }
    }
  }
  if (found < 0) {
    e->ms[c->idx].unexpected++;
    kz_log(e->env, KZ_LOG_DEBUG, "sipp", "call %s: unexpected %.*s%.0u at index %zu", c->callid,
           (int)m->method_text.len, m->method_text.p, m->is_request ? 0u : m->status, c->idx);
    last_set(c, m, data, len);
    call_fail(c, KZ_SIPP_FAIL_UNEXPECTED);
    return;
  }
  const struct cmd *cmd = &sc->cmds[found];
  if (cmd->lost_ppm && kz_prng_chance_ppm(&e->prng, cmd->lost_ppm)) {
    e->ms[found].lost++;
    return;
  }
  struct kz_slice tag = m->is_request ? m->from.tag : m->to.tag;
  /* Usually the tag already kept: no new copy for every message. */
  if (tag.p && tag.len && !(c->peer_tag && kz_slice_eq_cstr(tag, c->peer_tag))) set_peer_tag(c, tag);
  if (!m->is_request && m->status >= 200 && m->status < 300 && m->cseq.method == KZ_SIP_METHOD_INVITE)
    c->ack_pending = true;
  if (cmd->rrs) record_routes(c, m);
  if (!m->is_request && (m->status == 401 || m->status == 407)) {
    /* Kept for [authentication] (SIPp keeps it when auth="true"; every
     * challenge is kept here, which only matters if nobody answers it). */
    const struct kz_sip_hdr *h =
        kz_sip_msg_hdr(m, m->status == 401 ? KZ_SIP_HDR_WWW_AUTHENTICATE : KZ_SIP_HDR_PROXY_AUTHENTICATE);
    if (h) {
      struct kz_buf b;
      kz_buf_init(&b);
      if (kz_sip_unfold(&b, h->value) == 0 && set_str(&c->auth_chal, kz_buf_slice(&b)) == 0)
        c->auth_code = m->status;
      kz_buf_free(&b);
    }
  }
  c->next_retrans = 0;
  last_set(c, m, data, len);
  c->last_recv_fresh = true;
  c->last_recv_len = len;
  if (!c->last_recv_kept) c->last_recv_hash = kz_hash64(data, len, 0);
  c->last_recv_index = found;
  bookkeeping(c, cmd);
  e->ms[found].recv++;
  bool jumped = false;
  int r = run_actions(c, cmd, data, len, m, &jumped);
  if (r) {
    call_fail(c, (enum kz_sipp_fail)(r - 1));
    return;
  }
  if (jumped) {
    c->paused = false;
    c->recv_timeout = 0;
    if (call_run(c)) call_arm(c);
    return;
  }
  if (!cmd->optional || (cmd->next >= 0 && (cmd->test < 0 || var_isset(&c->vars[cmd->test])))) {
    c->paused = false;
    c->idx = (size_t)found;
    if (!call_next(c)) return;
    if (call_run(c)) call_arm(c);
    return;
  }
  call_arm(c);
}

/* The Call-ID that matches a message to its call: SIPp drops what comes
 * before a "///" (its 3PCC marker; OpenSIPS tests use it as a prefix). */
static struct kz_slice match_id(const struct kz_sipp *e, struct kz_slice id) {
  if (e->cfg.callid_slash_ign) return id;
  /* memchr to each '/' (usually none) rather than a compare per byte. */
  const char *q = id.p, *end = id.p + id.len;
  while (end - q >= 3 && (q = memchr(q, '/', (size_t)(end - q - 2))) != NULL) {
    if (q[1] == '/' && q[2] == '/') return kz_slice_make(q + 3, (size_t)(end - q - 3));
    q++;
  }
  return id;
}

static void on_recv(void *arg, struct kz_udp *u, const struct kz_addr *from, const uint8_t *data, size_t len) {
  struct kz_sipp *e = arg;
  (void)u;
  struct kz_sip_msg *m = NULL;
  struct kz_sip_perr perr;
  int rc = kz_sip_msg_parse_reuse(&m, e->spare, data, len, KZ_SIP_PARSE_COPY, &perr);
  if (rc == KZ_ENOENT) return; /* CRLF keep-alive */
  if (rc) {
    e->st.parse_errors++;
    return;
  }
  e->spare = NULL; /* spent: it is m now, or was released */
  dead_purge(e);
  struct kz_slice key = match_id(e, m->call_id);
  char keybuf[256];
  if (key.len >= sizeof keybuf) {
    e->st.parse_errors++;
    kz_deref(m);
    return;
  }
  memcpy(keybuf, key.p, key.len);
  keybuf[key.len] = '\0';
  struct call *c = kz_map_get_str(&e->calls, keybuf);
  if (!c) {
    if (kz_map_get_str(&e->dead, keybuf)) {
      e->st.dead_call++;
    } else if (e->role == KZ_SIPP_UAS && m->is_request && m->method != KZ_SIP_METHOD_ACK) {
      if ((e->cfg.max_calls && e->st.calls_created >= e->cfg.max_calls) ||
          (e->cfg.call_limit && e->st.calls_current >= e->cfg.call_limit)) {
        e->st.calls_refused++;
      } else {
        char idbuf[256];
        size_t n = m->call_id.len < sizeof idbuf ? m->call_id.len : sizeof idbuf - 1;
        memcpy(idbuf, m->call_id.p, n);
        idbuf[n] = '\0';
        c = call_new(e, keybuf, idbuf);
      }
    } else {
      e->st.out_of_call++;
    }
  }
  if (c) {
    if (e->role == KZ_SIPP_UAS) c->peer = *from;
    process_incoming(c, m, data, len);
  }
  /* Kept for the next datagram unless a call still holds it. */
  if (kz_refcount(m) == 1 && !e->spare) e->spare = m;
  else kz_deref(m);
}

/* ------------------------------------------------------------------ */
/* Call generation (UAC)                                               */

static void rate_cb(void *arg) {
  struct kz_sipp *e = arg;
  uint64_t period = (uint64_t)e->cfg.rate_period_ms * NS_PER_MS;
  for (;;) {
    if (e->cfg.max_calls && e->st.calls_created >= e->cfg.max_calls) return;
    uint64_t due = e->start + e->st.calls_created * period / e->cfg.rate;
    uint64_t now = now_ns(e);
    if (due > now) {
      et_start(e, RATE_SLOT, due);
      return;
    }
    if (e->cfg.call_limit && e->st.calls_current >= e->cfg.call_limit) return; /* call_end re-arms */
    /* "%llu-%u@%s" of (number, pid, local IP), by hand: once per call. */
    char id[96], num[24];
    char *ne = num + sizeof num, *nb = dec_u64(ne, e->numbers + 1);
    size_t n = (size_t)(ne - nb);
    memcpy(id, nb, n);
    id[n++] = '-';
    nb = dec_u64(ne, e->cfg.pid);
    memcpy(id + n, nb, (size_t)(ne - nb));
    n += (size_t)(ne - nb);
    id[n++] = '@';
    memcpy(id + n, e->local_ip, e->local_ip_len + 1); /* KZ_ADDR_STRLEN + 24 < sizeof id */
    struct call *c = call_new(e, id, id);
    if (!c) {
      et_start(e, RATE_SLOT, now + NS_PER_MS); /* out of memory: try again soon */
      return;
    }
    if (call_run(c)) call_arm(c);
  }
}

/* ------------------------------------------------------------------ */
/* CSV injection file                                                  */

static int csv_load(struct kz_sipp *e) {
  const char *p = (const char *)e->cfg.inf, *end = p + e->cfg.inf_len;
  bool first = true;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    const char *le = eol;
    if (le > p && le[-1] == '\r') le--;
    size_t n = (size_t)(le - p);
    if (first) {
      first = false;
      if (n >= 10 && strncmp(p, "SEQUENTIAL", 10) == 0) e->csv_random = false;
      else if (n >= 6 && strncmp(p, "RANDOM", 6) == 0) e->csv_random = true;
      else return KZ_EINVAL; /* USER and unknown orders are not implemented */
    } else if (n && p[0] != '#' && !(n >= 2 && p[0] == '/' && p[1] == '/')) {
      struct csv_line *l = kz_realloc(e->csv, (e->ncsv + 1) * sizeof *l);
      if (!l) return KZ_ENOMEM;
      e->csv = l;
      l = &e->csv[e->ncsv++];
      memset(l, 0, sizeof *l);
      const char *f = p;
      for (;;) {
        const char *semi = memchr(f, ';', (size_t)(le - f));
        const char *fe = semi ? semi : le;
        if (!semi && fe == f && l->nf) break; /* trailing ';' */
        char **fs = kz_realloc(l->f, (l->nf + 1) * sizeof *fs);
        if (!fs) return KZ_ENOMEM;
        l->f = fs;
        if (!(l->f[l->nf] = kz_strndup(f, (size_t)(fe - f)))) return KZ_ENOMEM;
        l->nf++;
        if (!semi) break;
        f = semi + 1;
      }
    }
    p = eol + 1;
  }
  if (e->ncsv == 0) return KZ_EINVAL;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */

const char *kz_sipp_fail_name(enum kz_sipp_fail f) {
  static const char *const names[KZ_SIPP_FAIL_COUNT] = {
      "unexpected message", "recv timeout", "max UDP retransmissions", "regexp doesn't match",
      "regexp shouldn't match", "test failed", "call timeout", "send error"};
  return (unsigned)f < KZ_SIPP_FAIL_COUNT ? names[f] : "unknown";
}

void kz_sipp_free(struct kz_sipp *e) {
  if (!e) return;
  if (e->slots) et_stop(e, RATE_SLOT);
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&e->calls, &pos, &k, &kl, &v)) call_free(v);
  kz_map_free(&e->calls);
  kz_timer_stop(&e->tick);
  kz_free(e->th);
  kz_free(e->slots);
  while (e->dead_head) {
    struct dead *d = e->dead_head;
    e->dead_head = d->next;
    kz_free(d);
  }
  kz_map_free(&e->dead);
  for (size_t i = 0; i < e->ncsv; i++) {
    for (size_t j = 0; j < e->csv[i].nf; j++) kz_free(e->csv[i].f[j]);
    kz_free(e->csv[i].f);
  }
  kz_free(e->csv);
  kz_udp_close(e->udp);
  kz_free(e->ms);
  kz_buf_free(&e->scratch);
  kz_deref(e->spare);
  kz_free(e);
}

int kz_sipp_new(struct kz_sipp **out, struct kz_env *env, const struct kz_sipp_cfg *cfg) {
  if (!out || !env || !cfg || !cfg->scenario) return KZ_EINVAL;
  struct kz_sipp *e = kz_calloc(1, sizeof *e);
  if (!e) return KZ_ENOMEM;
  int rc;
  e->env = env;
  e->cfg = *cfg;
  e->sc = cfg->scenario;
  struct kz_sipp_cfg *g = &e->cfg;
  if (!g->rate) g->rate = 10;
  if (!g->rate_period_ms) g->rate_period_ms = 1000;
  if (!g->service) g->service = "service";
  if (!g->auth_user) g->auth_user = g->service;
  if (!g->auth_pass) g->auth_pass = "password";
  if (!g->t2_ms) g->t2_ms = 4000;
  if (!g->max_invite_retrans) g->max_invite_retrans = 5;
  if (!g->max_non_invite_retrans) g->max_non_invite_retrans = 9;
  if (!g->deadcall_wait_ms) g->deadcall_wait_ms = 33000;
  if (!g->pid) g->pid = 4242;
  if (!g->media.family) g->media = g->local;
  if (!g->media.port) g->media.port = 6000;
  if (kz_addr_v4_host(&g->media) == 0 && g->media.family == 4) {
    uint16_t port = g->media.port;
    g->media = g->local;
    g->media.port = port;
  }
  e->role = g->role ? g->role : kz_sipp_scenario_role(e->sc);
  kz_map_init(&e->calls, 0x5149505043414c4cULL, false);
  kz_map_init(&e->dead, 0x5149505044454144ULL, false);
  kz_buf_init(&e->scratch);
  kz_env_prng(env, "sipp", &e->prng);
  kz_timer_init(&e->tick, env, tick_cb, e);
  e->free_slot = NO_POS;
  {
    uint32_t rs;
    if ((rc = et_slot_new(e, NULL, &rs))) goto fail; /* RATE_SLOT */
  }
  e->start = kz_env_now(env);
  kz_addr_format_ip(&g->local, e->local_ip, sizeof e->local_ip);
  kz_addr_format_ip(&g->remote, e->remote_ip, sizeof e->remote_ip);
  kz_addr_format_ip(&g->media, e->media_ip, sizeof e->media_ip);
  e->local_ip_len = strlen(e->local_ip);
  e->remote_ip_len = strlen(e->remote_ip);
  e->media_ip_len = strlen(e->media_ip);
  e->service_len = strlen(g->service);
  e->local_port_len = (size_t)snprintf(e->local_port_txt, sizeof e->local_port_txt, "%u", (unsigned)g->local.port);
  e->remote_port_len = (size_t)snprintf(e->remote_port_txt, sizeof e->remote_port_txt, "%u", (unsigned)g->remote.port);
  memcpy(e->st.rtd_name, e->sc->rtd_names, sizeof e->st.rtd_name);
  e->st.nrtd = e->sc->nrtd;
  for (uint32_t i = 0; i < KZ_SIPP_MAX_RTDS; i++) {
    e->st.rtd[i].nbounds = e->sc->nrt;
    memcpy(e->st.rtd[i].bound_ms, e->sc->rt_bounds, sizeof e->sc->rt_bounds);
  }
  e->st.call_length.nbounds = e->sc->ncl;
  memcpy(e->st.call_length.bound_ms, e->sc->cl_bounds, sizeof e->sc->cl_bounds);
  if (!(e->ms = kz_calloc(e->sc->ncmds, sizeof *e->ms))) {
    rc = KZ_ENOMEM;
    goto fail;
  }
  if (e->role == KZ_SIPP_UAC && (!g->remote.family || !g->remote.port)) {
    rc = KZ_EINVAL;
    goto fail;
  }
  if (g->inf && (rc = csv_load(e))) goto fail;
  if ((rc = kz_udp_bind(env, &g->local, on_recv, e, &e->udp))) goto fail;
  g->local.port = e->udp->local.port;
  if (e->role == KZ_SIPP_UAC && (rc = et_start(e, RATE_SLOT, kz_env_now(env)))) goto fail;
  *out = e;
  return 0;
fail:
  kz_sipp_free(e);
  return rc;
}

const struct kz_sipp_stats *kz_sipp_stats(const struct kz_sipp *e) { return &e->st; }

const struct kz_sipp_msg_stats *kz_sipp_msg_stats(const struct kz_sipp *e, size_t *n) {
  if (n) *n = e->sc->ncmds;
  return e->ms;
}

bool kz_sipp_done(const struct kz_sipp *e) {
  return e->cfg.max_calls && e->st.calls_created >= e->cfg.max_calls && e->st.calls_current == 0;
}

int kz_sipp_app_start(struct kz_env *env, const void *cfg, void **instance) {
  struct kz_sipp *e = NULL;
  int rc = kz_sipp_new(&e, env, cfg);
  if (rc == 0) *instance = e;
  return rc;
}

void kz_sipp_app_stop(void *instance) { kz_sipp_free(instance); }

/* ------------------------------------------------------------------ */
/* Statistics screen                                                   */

static int print_repart(struct kz_buf *b, const char *title, const struct kz_sipp_repartition *r) {
  int rc = kz_buf_printf(b, "  %s (n=%llu", title, (unsigned long long)r->n);
  if (!rc && r->n)
    rc = kz_buf_printf(b, ", min %llu ms, avg %llu ms, max %llu ms", (unsigned long long)r->min_ms,
                       (unsigned long long)(r->sum_ms / r->n), (unsigned long long)r->max_ms);
  if (!rc) rc = kz_buf_append_cstr(b, ")\n");
  for (uint32_t i = 0; i <= r->nbounds && !rc; i++) {
    if (i == 0) rc = kz_buf_printf(b, "    %10s < %8u ms : %llu\n", "0 ms <=", r->bound_ms[0], (unsigned long long)r->count[0]);
    else if (i < r->nbounds)
      rc = kz_buf_printf(b, "    %7u ms <= n < %8u ms : %llu\n", r->bound_ms[i - 1], r->bound_ms[i], (unsigned long long)r->count[i]);
    else rc = kz_buf_printf(b, "    %7u ms <= n %13s : %llu\n", r->bound_ms[i - 1], "", (unsigned long long)r->count[i]);
  }
  return rc;
}

int kz_sipp_print_stats(const struct kz_sipp *e, struct kz_buf *b) {
  const struct kz_sipp_scenario *sc = e->sc;
  const struct kz_sipp_stats *s = &e->st;
  bool uas = e->role == KZ_SIPP_UAS;
  int rc = kz_buf_printf(b, "----- Scenario \"%s\" (%s) -----\n", sc->name, uas ? "UAS" : "UAC");
  if (!rc) rc = kz_buf_printf(b, "%-28s %9s %9s %9s %9s\n", "", "Messages", "Retrans", "Timeout", "Unexpected");
  for (size_t i = 0; i < sc->ncmds && !rc; i++) {
    const struct cmd *c = &sc->cmds[i];
    const struct kz_sipp_msg_stats *m = &e->ms[i];
    char label[40];
    if (c->type == CMD_SEND || c->type == CMD_RECV) {
      char what[24];
      if (c->type == CMD_SEND && c->is_request) snprintf(what, sizeof what, "%s", c->method);
      else if (c->type == CMD_SEND)
        snprintf(what, sizeof what, "%.3s", c->tmpl.n && c->tmpl.c[0].type == TC_LIT && c->tmpl.c[0].len > 11 ? c->tmpl.c[0].text + 8 : "???");
      else if (c->recv_request) snprintf(what, sizeof what, "%.20s", c->recv_request);
      else snprintf(what, sizeof what, "%d", c->recv_response);
      bool out = c->type == CMD_SEND;
      if (!uas) snprintf(label, sizeof label, "%10s %s", what, out ? "---------->" : "<----------");
      else snprintf(label, sizeof label, "  %s %-10s", out ? "<----------" : "---------->", what);
      if (c->type == CMD_SEND)
        rc = kz_buf_printf(b, "%-28s %9llu %9llu %9llu %9s", label, (unsigned long long)m->sent,
                           (unsigned long long)m->sent_retrans, (unsigned long long)m->timeout, "");
      else
        rc = kz_buf_printf(b, "%-28s %9llu %9llu %9llu %9llu", label, (unsigned long long)m->recv,
                           (unsigned long long)m->recv_retrans, (unsigned long long)m->timeout,
                           (unsigned long long)m->unexpected);
    } else if (c->type == CMD_PAUSE) {
      snprintf(label, sizeof label, "  %s", c->timewait ? "[ Timewait ]" : "[  Pause   ]");
      rc = kz_buf_printf(b, "%-28s %9llu %9s %9s %9llu", label, (unsigned long long)m->sessions, "", "",
                         (unsigned long long)m->unexpected);
    } else {
      rc = kz_buf_printf(b, "%-28s %9s %9s %9s %9llu", "  [   NOP    ]", "", "", "", (unsigned long long)m->unexpected);
    }
    if (!rc && m->lost) rc = kz_buf_printf(b, " lost %llu", (unsigned long long)m->lost);
    if (!rc) rc = kz_buf_append_cstr(b, c->crlf ? "\n\n" : "\n");
  }
  if (!rc)
    rc = kz_buf_printf(b,
                       "Calls: created %llu, current %llu, successful %llu, failed %llu\n"
                       "Retransmissions: %llu   Out-of-call msgs: %llu   Dead-call msgs: %llu   "
                       "Parse errors: %llu   Refused calls: %llu\n",
                       (unsigned long long)s->calls_created, (unsigned long long)s->calls_current,
                       (unsigned long long)s->calls_successful, (unsigned long long)s->calls_failed,
                       (unsigned long long)s->retransmissions, (unsigned long long)s->out_of_call,
                       (unsigned long long)s->dead_call, (unsigned long long)s->parse_errors,
                       (unsigned long long)s->calls_refused);
  for (int f = 0; f < KZ_SIPP_FAIL_COUNT && !rc; f++)
    if (s->failed[f]) rc = kz_buf_printf(b, "  Failed (%s): %llu\n", kz_sipp_fail_name((enum kz_sipp_fail)f), (unsigned long long)s->failed[f]);
  for (uint32_t i = 0; i < s->nrtd && !rc; i++) {
    char t[48];
    snprintf(t, sizeof t, "Response time %s", s->rtd_name[i]);
    rc = print_repart(b, t, &s->rtd[i]);
  }
  if (!rc) rc = print_repart(b, "Call length", &s->call_length);
  return rc;
}
