/* txn.c — RFC 3261 §17 transaction state machines, matching (§17.1.3, §17.2.3, RFC 2543 fallback) and timers, sans-I/O. */
#include "kz/sip_txn.h"

#include <string.h>

#include "kz/error.h"
#include "kz/heap.h"
#include "kz/map.h"
#include "kz/mem.h"
#include "kz/sip_build.h"

/* Each transaction has at most one deadline of each kind; the heap holds
 * every live transaction keyed by its earliest one (UINT64_MAX for none),
 * so rescheduling is remove + push and never needs to grow the array. */
enum tm_kind {
  TM_RETX = 0, /* A (client INVITE), E (client non-INVITE), G (server INVITE) */
  TM_TIMEOUT,  /* B, F, H */
  TM_END,      /* D, K, I, J */
  TM_TRYING,   /* the automatic 100 Trying of a server INVITE */
  TM_COUNT
};

struct kz_sip_txn {
  struct kz_sip_txl *txl; /* NULL once the layer is gone */
  struct kz_heap_node node;
  uint64_t deadline[TM_COUNT];
  uint64_t retx_interval;
  bool server, invite, reliable;
  enum kz_sip_txn_state state;
  uint16_t last_status;
  struct kz_sip_msg *req; /* owns a copy of its bytes */
  struct kz_buf key;      /* map key */
  struct kz_buf out;      /* client: the request; server: the last response */
  struct kz_buf ack;      /* client INVITE: the ACK for a non-2xx */
  struct kz_buf resp_tag; /* server INVITE: To tag of the final response (2543 ACKs) */
  struct kz_addr dest;    /* client: next hop; server: where the request came from */
  enum kz_sip_transport transport;
  void *user;
};

struct kz_sip_txl {
  struct kz_sip_txl_config cfg;
  struct kz_sip_txl_cbs cbs;
  void *arg;
  struct kz_map txns;
  struct kz_heap timers;
};

static const char cookie[] = "z9hG4bK";

/* ------------------------------------------------------------------ */
/* Keys                                                                */

static bool has_cookie(struct kz_slice branch) {
  return branch.len >= 7 && memcmp(branch.p, cookie, 7) == 0;
}

static int key_part(struct kz_buf *k, struct kz_slice s) {
  int rc = kz_buf_append(k, s.p, s.len);
  return rc ? rc : kz_buf_append_byte(k, 0);
}

static int key_num(struct kz_buf *k, unsigned long v) {
  int rc = kz_buf_printf(k, "%lu", v);
  return rc ? rc : kz_buf_append_byte(k, 0);
}

/* §17.1.3: branch of the top Via and the CSeq method. */
static int key_client(struct kz_buf *k, struct kz_slice branch, struct kz_slice method) {
  int rc = key_part(k, KZ_SLICE_LIT("c"));
  if (!rc) rc = key_part(k, branch);
  if (!rc) rc = key_part(k, method);
  return rc;
}

/* §17.2.3: branch, sent-by (host case-folded) and method; or, without
 * the magic cookie, the RFC 2543 identity of the request.  `method` is
 * the method to look up (INVITE for an ACK or a CANCEL's target) and
 * `to_tag` the To tag to key on. */
static int key_server(struct kz_buf *k, const struct kz_sip_msg *m, struct kz_slice method,
                      struct kz_slice to_tag) {
  const struct kz_sip_via *v = &m->vias[0];
  int rc;
  if (has_cookie(v->branch)) {
    rc = key_part(k, KZ_SLICE_LIT("s"));
    if (!rc) rc = key_part(k, v->branch);
    for (size_t i = 0; !rc && i < v->host.len; i++) {
      char c = v->host.p[i];
      rc = kz_buf_append_byte(k, (uint8_t)(c >= 'A' && c <= 'Z' ? c + 32 : c));
    }
    if (!rc) rc = kz_buf_append_byte(k, 0);
    if (!rc) rc = key_num(k, v->port);
  } else {
    rc = key_part(k, KZ_SLICE_LIT("2"));
    if (!rc) rc = key_part(k, m->call_id);
    if (!rc) rc = key_num(k, m->cseq.num);
    if (!rc) rc = key_part(k, m->from.tag);
    if (!rc) rc = key_part(k, to_tag);
    if (!rc) rc = key_part(k, m->ruri.raw);
    if (!rc) rc = kz_sip_unfold(k, v->raw);
    if (!rc) rc = kz_buf_append_byte(k, 0);
  }
  if (!rc) rc = key_part(k, method);
  return rc;
}

static struct kz_sip_txn *lookup(struct kz_sip_txl *txl, const struct kz_buf *k) {
  return kz_map_get(&txl->txns, k->data, k->len, NULL);
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */

static void txn_dtor(void *obj) {
  struct kz_sip_txn *t = obj;
  kz_deref(t->req);
  kz_buf_free(&t->key);
  kz_buf_free(&t->out);
  kz_buf_free(&t->ack);
  kz_buf_free(&t->resp_tag);
}

static bool is_reliable(enum kz_sip_transport tp) {
  return tp != KZ_SIP_TRANSPORT_UDP && tp != KZ_SIP_TRANSPORT_OTHER;
}

static struct kz_sip_txn *txn_alloc(struct kz_sip_txl *txl, const struct kz_addr *dest,
                                    enum kz_sip_transport tp) {
  struct kz_sip_txn *t = kz_obj_alloc(sizeof *t, txn_dtor);
  if (!t) return NULL;
  t->txl = txl;
  kz_heap_node_init(&t->node);
  for (int i = 0; i < TM_COUNT; i++) t->deadline[i] = UINT64_MAX;
  t->dest = *dest;
  t->transport = tp;
  t->reliable = is_reliable(tp);
  return t;
}

/* Puts a new transaction (its key already built) in the heap and the
 * map; the map holds the layer's reference.  Returns 0 or KZ_ENOMEM. */
static int txn_insert(struct kz_sip_txl *txl, struct kz_sip_txn *t) {
  int rc = kz_heap_push(&txl->timers, &t->node, UINT64_MAX);
  if (rc) return rc;
  rc = kz_map_put(&txl->txns, t->key.data, t->key.len, t, NULL);
  if (rc) kz_heap_remove(&txl->timers, &t->node);
  return rc;
}

static void resched(struct kz_sip_txn *t) {
  if (!t->txl || !kz_heap_node_queued(&t->node)) return;
  uint64_t min = UINT64_MAX;
  for (int i = 0; i < TM_COUNT; i++)
    if (t->deadline[i] < min) min = t->deadline[i];
  kz_heap_remove(&t->txl->timers, &t->node);
  /* Cannot fail: the removal left room in the array. */
  int rc = kz_heap_push(&t->txl->timers, &t->node, min);
  (void)rc;
}

static void emit(struct kz_sip_txn *t, const struct kz_sip_txl_event *ev) {
  struct kz_sip_txl *txl = t ? t->txl : NULL;
  if (txl) txl->cbs.event(txl->arg, ev);
}

/* Ends the transaction: out of the heap and map, TERMINATED reported,
 * the layer's reference dropped.  Callers hold a reference of their own
 * across the call. */
static void terminate(struct kz_sip_txn *t) {
  if (t->state == KZ_SIP_TXN_TERMINATED) return;
  struct kz_sip_txl *txl = t->txl;
  t->state = KZ_SIP_TXN_TERMINATED;
  for (int i = 0; i < TM_COUNT; i++) t->deadline[i] = UINT64_MAX;
  if (!txl) return;
  kz_heap_remove(&txl->timers, &t->node);
  if (kz_map_get(&txl->txns, t->key.data, t->key.len, NULL) == t)
    kz_map_del(&txl->txns, t->key.data, t->key.len, NULL);
  struct kz_sip_txl_event ev = {.type = KZ_SIP_TXL_EV_TERMINATED, .txn = t};
  emit(t, &ev);
  kz_deref(t);
}

/* §17.1.4 / §17.2.4: tell the TU, then end the transaction. */
static void transport_error(struct kz_sip_txn *t, int err) {
  struct kz_sip_txl_event ev = {.type = KZ_SIP_TXL_EV_TRANSPORT_ERROR, .txn = t, .error = err};
  emit(t, &ev);
  terminate(t);
}

static int txn_send(struct kz_sip_txn *t, const struct kz_buf *b) {
  if (!t->txl) return KZ_ECLOSED;
  return t->txl->cbs.send(t->txl->arg, b->data, b->len, &t->dest, t->transport);
}

/* Sends b; on failure reports it and terminates.  Returns true when
 * the transaction is still alive. */
static bool send_or_fail(struct kz_sip_txn *t, const struct kz_buf *b) {
  int rc = txn_send(t, b);
  if (rc) {
    transport_error(t, rc);
    return false;
  }
  return true;
}

/* Where the reliable transports need no wait (D, I, J, K are zero), the
 * transaction ends at once; otherwise the END timer starts. */
static void start_end(struct kz_sip_txn *t, uint64_t now, uint64_t wait) {
  if (t->reliable || wait == 0) {
    terminate(t);
  } else {
    t->deadline[TM_END] = now + wait;
    resched(t);
  }
}

/* ------------------------------------------------------------------ */
/* The layer                                                           */

int kz_sip_txl_new(struct kz_sip_txl **out, const struct kz_sip_txl_config *cfg,
                   const struct kz_sip_txl_cbs *cbs, void *arg) {
  if (!out || !cbs || !cbs->send || !cbs->event) return KZ_EINVAL;
  struct kz_sip_txl *txl = kz_calloc(1, sizeof *txl);
  if (!txl) return KZ_ENOMEM;
  if (cfg) txl->cfg = *cfg;
  if (!txl->cfg.t1) txl->cfg.t1 = 500 * KZ_SIP_MS;
  if (!txl->cfg.t2) txl->cfg.t2 = 4000 * KZ_SIP_MS;
  if (!txl->cfg.t4) txl->cfg.t4 = 5000 * KZ_SIP_MS;
  if (!txl->cfg.timer_d) txl->cfg.timer_d = 32000 * KZ_SIP_MS;
  if (!txl->cfg.trying_delay) txl->cfg.trying_delay = 200 * KZ_SIP_MS;
  txl->cbs = *cbs;
  txl->arg = arg;
  kz_map_init(&txl->txns, txl->cfg.map_seed, false);
  kz_heap_init(&txl->timers);
  *out = txl;
  return 0;
}

void kz_sip_txl_free(struct kz_sip_txl *txl) {
  if (!txl) return;
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&txl->txns, &pos, &k, &kl, &v)) {
    struct kz_sip_txn *t = v;
    t->state = KZ_SIP_TXN_TERMINATED;
    t->txl = NULL;
    kz_deref(t);
  }
  kz_map_free(&txl->txns);
  kz_heap_free(&txl->timers);
  kz_free(txl);
}

size_t kz_sip_txl_count(const struct kz_sip_txl *txl) { return txl ? kz_map_count(&txl->txns) : 0; }

uint64_t kz_sip_txl_next_expiry(const struct kz_sip_txl *txl) {
  if (!txl) return UINT64_MAX;
  struct kz_heap_node *n = kz_heap_peek(&txl->timers);
  return n ? n->key : UINT64_MAX;
}

/* ------------------------------------------------------------------ */
/* Client transactions (§17.1)                                         */

int kz_sip_txl_request(struct kz_sip_txl *txl, const void *bytes, size_t len,
                       const struct kz_addr *dest, enum kz_sip_transport transport, void *user,
                       uint64_t now, struct kz_sip_txn **out) {
  if (!txl || !bytes || !len || !dest) return KZ_EINVAL;
  struct kz_sip_msg *req = NULL;
  int rc = kz_sip_msg_parse(&req, bytes, len, KZ_SIP_PARSE_COPY, NULL);
  if (rc) return rc == KZ_ENOMEM ? rc : KZ_EPROTO;
  struct kz_sip_txn *t = NULL;
  if (!req->is_request) {
    rc = KZ_EPROTO;
    goto out;
  }
  if (req->method == KZ_SIP_METHOD_ACK || !req->vias[0].branch.len) {
    rc = KZ_EINVAL;
    goto out;
  }
  t = txn_alloc(txl, dest, transport);
  if (!t) {
    rc = KZ_ENOMEM;
    goto out;
  }
  t->req = req;
  req = NULL;
  t->invite = t->req->method == KZ_SIP_METHOD_INVITE;
  t->state = t->invite ? KZ_SIP_TXN_CALLING : KZ_SIP_TXN_TRYING;
  t->user = user;
  rc = key_client(&t->key, t->req->vias[0].branch, t->req->method_text);
  if (!rc) rc = kz_buf_append(&t->out, t->req->raw.p, t->req->raw.len);
  if (rc) goto out;
  if (lookup(txl, &t->key)) {
    rc = KZ_EEXIST;
    goto out;
  }
  rc = txn_insert(txl, t);
  if (rc) goto out;
  rc = txn_send(t, &t->out);
  if (rc) {
    /* Nothing was created as far as the TU is concerned. */
    kz_heap_remove(&txl->timers, &t->node);
    kz_map_del(&txl->txns, t->key.data, t->key.len, NULL);
    goto out;
  }
  /* Timers A / E (unreliable only) and B / F. */
  if (!t->reliable) {
    t->retx_interval = txl->cfg.t1;
    t->deadline[TM_RETX] = now + txl->cfg.t1;
  }
  t->deadline[TM_TIMEOUT] = now + 64 * txl->cfg.t1;
  resched(t);
  if (out) *out = t;
  return 0;
out:
  kz_deref(req);
  kz_deref(t);
  return rc;
}

int kz_sip_txl_request_msg(struct kz_sip_txl *txl, const struct kz_sip_msg *msg,
                           const struct kz_addr *dest, enum kz_sip_transport transport,
                           void *user, uint64_t now, struct kz_sip_txn **out) {
  if (!msg) return KZ_EINVAL;
  return kz_sip_txl_request(txl, msg->raw.p, msg->raw.len, dest, transport, user, now, out);
}

int kz_sip_txl_cancel(struct kz_sip_txl *txl, struct kz_sip_txn *invite, void *user,
                      uint64_t now, struct kz_sip_txn **out) {
  if (!txl || !invite || invite->txl != txl || invite->server || !invite->invite ||
      invite->state != KZ_SIP_TXN_PROCEEDING)
    return KZ_EINVAL;
  struct kz_buf b = {0};
  int rc = kz_sip_build_cancel(&b, invite->req);
  if (!rc)
    rc = kz_sip_txl_request(txl, b.data, b.len, &invite->dest, invite->transport, user, now, out);
  kz_buf_free(&b);
  return rc;
}

static void client_response(struct kz_sip_txn *t, const struct kz_sip_msg *msg,
                            const struct kz_addr *src, enum kz_sip_transport tp, uint64_t now) {
  struct kz_sip_txl *txl = t->txl;
  struct kz_sip_txl_event ev = {
      .type = KZ_SIP_TXL_EV_RESPONSE, .txn = t, .msg = msg, .src = src, .transport = tp};
  uint16_t st = msg->status;
  bool early = t->state == KZ_SIP_TXN_CALLING || t->state == KZ_SIP_TXN_TRYING ||
               t->state == KZ_SIP_TXN_PROCEEDING;
  if (t->invite) {
    if (!early) {
      /* Completed: a retransmitted final response asks for the ACK again
       * (§17.1.1.2); it is not the TU's business.  A 2xx here comes from
       * another fork after this one's non-2xx: the TU must see it to ACK
       * it and keep or end that dialog (RFC 6026 §8.4).  It is passed up
       * with txn == NULL, like a 2xx after the transaction ended, and
       * leaves the transaction (Timer D) alone. */
      if (st >= 200 && st < 300) {
        ev.txn = NULL;
        emit(t, &ev);
      } else if (st >= 300 && t->ack.len) {
        send_or_fail(t, &t->ack);
      }
      return;
    }
    t->last_status = st;
    if (st < 200) {
      /* Provisional: stop retransmitting; B only guards Calling. */
      t->state = KZ_SIP_TXN_PROCEEDING;
      t->deadline[TM_RETX] = t->deadline[TM_TIMEOUT] = UINT64_MAX;
      resched(t);
      emit(t, &ev);
      return;
    }
    t->deadline[TM_RETX] = t->deadline[TM_TIMEOUT] = UINT64_MAX;
    if (st < 300) {
      emit(t, &ev);
      terminate(t);
      return;
    }
    /* 300-699: the transaction ACKs it itself (§17.1.1.3). */
    t->state = KZ_SIP_TXN_COMPLETED;
    kz_buf_reset(&t->ack);
    int rc = kz_sip_build_ack(&t->ack, t->req, msg);
    if (!rc) rc = txn_send(t, &t->ack);
    emit(t, &ev);
    if (t->state != KZ_SIP_TXN_COMPLETED) return;
    if (rc)
      transport_error(t, rc);
    else
      start_end(t, now, txl->cfg.timer_d);
    return;
  }
  if (!early) return; /* Completed absorbs retransmissions */
  t->last_status = st;
  if (st < 200) {
    /* E keeps firing, now every T2 (§17.1.2.2). */
    t->state = KZ_SIP_TXN_PROCEEDING;
    emit(t, &ev);
    return;
  }
  t->state = KZ_SIP_TXN_COMPLETED;
  t->deadline[TM_RETX] = t->deadline[TM_TIMEOUT] = UINT64_MAX;
  resched(t);
  emit(t, &ev);
  if (t->state == KZ_SIP_TXN_COMPLETED) start_end(t, now, txl->cfg.t4);
}

static void recv_response(struct kz_sip_txl *txl, const struct kz_sip_msg *msg,
                          const struct kz_addr *src, enum kz_sip_transport tp, uint64_t now,
                          int *err) {
  struct kz_sip_txn *t = NULL;
  struct kz_buf k = {0};
  if (msg->vias[0].branch.len) {
    *err = key_client(&k, msg->vias[0].branch, msg->cseq.method_text);
    if (*err) goto done;
    t = lookup(txl, &k);
  }
  if (!t) {
    /* §18.1.2: a response matching no transaction goes to the core. */
    struct kz_sip_txl_event ev = {
        .type = KZ_SIP_TXL_EV_RESPONSE, .msg = msg, .src = src, .transport = tp};
    txl->cbs.event(txl->arg, &ev);
    goto done;
  }
  kz_ref(t);
  client_response(t, msg, src, tp, now);
  kz_deref(t);
done:
  kz_buf_free(&k);
}

/* ------------------------------------------------------------------ */
/* Server transactions (§17.2)                                         */

/* Sends and records a response given as parsed `resp` over bytes. */
static int server_respond(struct kz_sip_txn *t, const struct kz_sip_msg *resp,
                          const void *bytes, size_t len, uint64_t now) {
  struct kz_sip_txl *txl = t->txl;
  uint16_t st = resp->status;
  bool open = t->invite ? t->state == KZ_SIP_TXN_PROCEEDING
                        : (t->state == KZ_SIP_TXN_TRYING || t->state == KZ_SIP_TXN_PROCEEDING);
  if (!open) return KZ_EINVAL;
  struct kz_buf nb = {0};
  int rc = kz_buf_append(&nb, bytes, len);
  if (!rc && t->invite && st >= 300) {
    kz_buf_reset(&t->resp_tag);
    rc = kz_buf_append_slice(&t->resp_tag, resp->to.tag);
  }
  if (rc) {
    kz_buf_free(&nb);
    return rc;
  }
  kz_buf_free(&t->out);
  t->out = nb;
  t->last_status = st;
  t->deadline[TM_TRYING] = UINT64_MAX;
  kz_ref(t);
  if (st < 200) {
    t->state = KZ_SIP_TXN_PROCEEDING;
    resched(t);
    send_or_fail(t, &t->out);
  } else if (t->invite && st < 300) {
    /* §17.2.1: a 2xx ends the INVITE server transaction; the TU
     * retransmits it. */
    if (send_or_fail(t, &t->out)) terminate(t);
  } else {
    t->state = KZ_SIP_TXN_COMPLETED;
    if (t->invite) {
      if (!t->reliable) {
        t->retx_interval = txl->cfg.t1;
        t->deadline[TM_RETX] = now + txl->cfg.t1; /* G */
      }
      t->deadline[TM_TIMEOUT] = now + 64 * txl->cfg.t1; /* H */
      resched(t);
      send_or_fail(t, &t->out);
    } else if (send_or_fail(t, &t->out)) {
      start_end(t, now, 64 * txl->cfg.t1); /* J */
    }
  }
  kz_deref(t);
  return 0;
}

int kz_sip_txn_respond(struct kz_sip_txn *t, const void *bytes, size_t len, uint64_t now) {
  if (!t || !t->txl || !t->server || t->state == KZ_SIP_TXN_TERMINATED || !bytes || !len)
    return KZ_EINVAL;
  struct kz_sip_msg *resp = NULL;
  int rc = kz_sip_msg_parse(&resp, bytes, len, 0, NULL);
  if (rc) return rc == KZ_ENOMEM ? rc : KZ_EPROTO;
  if (resp->is_request) {
    rc = KZ_EPROTO;
  } else if (resp->cseq.num != t->req->cseq.num || !kz_slice_eq(resp->call_id, t->req->call_id) ||
             !kz_slice_eq(resp->cseq.method_text, t->req->method_text)) {
    rc = KZ_EINVAL;
  } else {
    rc = server_respond(t, resp, bytes, len, now);
  }
  kz_deref(resp);
  return rc;
}

/* The automatic 100 Trying (§17.2.1: the TU did not answer in 200 ms). */
static void auto_trying(struct kz_sip_txn *t, uint64_t now) {
  struct kz_buf b = {0};
  struct kz_sip_resp_spec spec = {.status = 100};
  struct kz_sip_msg *resp = NULL;
  if (kz_sip_build_response(&b, t->req, &spec, NULL) == 0 &&
      kz_sip_msg_parse(&resp, b.data, b.len, 0, NULL) == 0)
    server_respond(t, resp, b.data, b.len, now);
  /* Out of memory: no 100; the client retransmits and the TU answers. */
  kz_deref(resp);
  kz_buf_free(&b);
}

/* A request matching an existing server transaction. */
static void server_retransmission(struct kz_sip_txn *t, const struct kz_sip_msg *msg,
                                  uint64_t now) {
  if (msg->method == KZ_SIP_METHOD_ACK) {
    if (!t->invite) return;
    if (t->state == KZ_SIP_TXN_COMPLETED) {
      /* §17.2.1: ACK confirms; I absorbs further ACKs. */
      t->state = KZ_SIP_TXN_CONFIRMED;
      t->deadline[TM_RETX] = t->deadline[TM_TIMEOUT] = UINT64_MAX;
      resched(t);
      start_end(t, now, t->txl->cfg.t4);
    }
    return;
  }
  /* A retransmitted request gets the last response again, if any;
   * non-INVITE Trying and INVITE before any response absorb it. */
  if ((t->state == KZ_SIP_TXN_PROCEEDING || t->state == KZ_SIP_TXN_COMPLETED) && t->out.len)
    send_or_fail(t, &t->out);
}

static int find_server(struct kz_sip_txl *txl, const struct kz_sip_msg *msg,
                       struct kz_slice method, struct kz_slice to_tag, struct kz_sip_txn **found) {
  struct kz_buf k = {0};
  int rc = key_server(&k, msg, method, to_tag);
  *found = rc ? NULL : lookup(txl, &k);
  kz_buf_free(&k);
  return rc;
}

static void recv_request(struct kz_sip_txl *txl, const struct kz_sip_msg *msg,
                         const struct kz_addr *src, enum kz_sip_transport tp, uint64_t now,
                         int *err) {
  bool rfc3261 = has_cookie(msg->vias[0].branch);
  struct kz_sip_txn *t = NULL;
  struct kz_sip_txl_event ev = {
      .type = KZ_SIP_TXL_EV_REQUEST, .msg = msg, .src = src, .transport = tp};

  if (msg->method == KZ_SIP_METHOD_ACK) {
    struct kz_slice inv = KZ_SLICE_LIT("INVITE");
    *err = find_server(txl, msg, inv, msg->to.tag, &t);
    if (!*err && !t && !rfc3261 && msg->to.tag.p) {
      /* RFC 2543: the ACK carries the tag of the response, the INVITE
       * had none; the tag must be the one the transaction sent. */
      *err = find_server(txl, msg, inv, KZ_SLICE_NULL, &t);
      if (t && !kz_slice_eq(msg->to.tag, kz_buf_slice(&t->resp_tag)))
        t = NULL;
    }
    if (*err) return;
    if (t && t->server && t->invite) {
      kz_ref(t);
      server_retransmission(t, msg, now);
      kz_deref(t);
    } else {
      /* The ACK for a 2xx (its own branch) or a stray one: the core's. */
      txl->cbs.event(txl->arg, &ev);
    }
    return;
  }

  *err = find_server(txl, msg, msg->method_text, msg->to.tag, &t);
  if (*err) return;
  if (t) {
    kz_ref(t);
    server_retransmission(t, msg, now);
    kz_deref(t);
    return;
  }
  struct kz_sip_txn *target = NULL;
  if (msg->method == KZ_SIP_METHOD_CANCEL) {
    /* §9.2: the CANCEL matches its INVITE by the §17.2.3 rules. */
    *err = find_server(txl, msg, KZ_SLICE_LIT("INVITE"), msg->to.tag, &target);
    if (*err) return;
  }
  /* A new server transaction, with its own copy of the request. */
  t = txn_alloc(txl, src, tp);
  if (!t) {
    *err = KZ_ENOMEM;
    return;
  }
  t->server = true;
  t->invite = msg->method == KZ_SIP_METHOD_INVITE;
  t->state = t->invite ? KZ_SIP_TXN_PROCEEDING : KZ_SIP_TXN_TRYING;
  *err = kz_sip_msg_parse(&t->req, msg->raw.p, msg->raw.len, KZ_SIP_PARSE_COPY, NULL);
  if (!*err) *err = key_server(&t->key, t->req, t->req->method_text, t->req->to.tag);
  if (!*err) *err = txn_insert(txl, t);
  if (*err) {
    if (*err != KZ_ENOMEM) *err = KZ_EPROTO;
    kz_deref(t);
    return;
  }
  if (t->invite && txl->cfg.trying_delay != UINT64_MAX) {
    t->deadline[TM_TRYING] = now + txl->cfg.trying_delay;
    resched(t);
  }
  ev.txn = t;
  ev.cancel_target = target;
  kz_ref(t);
  if (target) kz_ref(target);
  txl->cbs.event(txl->arg, &ev);
  kz_deref(target);
  kz_deref(t);
}

int kz_sip_txl_recv(struct kz_sip_txl *txl, const struct kz_sip_msg *msg,
                    const struct kz_addr *src, enum kz_sip_transport transport, uint64_t now) {
  if (!txl || !msg || !src || msg->nvias == 0) return KZ_EINVAL;
  int err = 0;
  if (msg->is_request)
    recv_request(txl, msg, src, transport, now, &err);
  else
    recv_response(txl, msg, src, transport, now, &err);
  return err;
}

/* ------------------------------------------------------------------ */
/* Timers                                                              */

static void fire(struct kz_sip_txn *t, enum tm_kind kind, uint64_t now) {
  struct kz_sip_txl *txl = t->txl;
  t->deadline[kind] = UINT64_MAX;
  switch (kind) {
  case TM_RETX:
    if (t->server) {
      /* G: resend the final response, doubling up to T2. */
      if (t->state != KZ_SIP_TXN_COMPLETED) break;
      t->retx_interval = t->retx_interval * 2 < txl->cfg.t2 ? t->retx_interval * 2 : txl->cfg.t2;
      t->deadline[TM_RETX] = now + t->retx_interval;
      resched(t);
      send_or_fail(t, &t->out);
    } else {
      if (t->invite) {
        /* A doubles without a cap; B bounds it. */
        if (t->state != KZ_SIP_TXN_CALLING) break;
        t->retx_interval *= 2;
      } else if (t->state == KZ_SIP_TXN_PROCEEDING) {
        t->retx_interval = txl->cfg.t2; /* E in Proceeding: every T2 */
      } else if (t->state == KZ_SIP_TXN_TRYING) {
        t->retx_interval =
            t->retx_interval * 2 < txl->cfg.t2 ? t->retx_interval * 2 : txl->cfg.t2;
      } else {
        break;
      }
      t->deadline[TM_RETX] = now + t->retx_interval;
      resched(t);
      send_or_fail(t, &t->out);
    }
    break;
  case TM_TIMEOUT: {
    /* B, F (no final response) or H (no ACK). */
    struct kz_sip_txl_event ev = {.type = KZ_SIP_TXL_EV_TIMEOUT, .txn = t};
    emit(t, &ev);
    terminate(t);
    break;
  }
  case TM_END:
    terminate(t);
    break;
  case TM_TRYING:
    if (t->state == KZ_SIP_TXN_PROCEEDING && t->last_status == 0) auto_trying(t, now);
    break;
  case TM_COUNT:
    break;
  }
}

void kz_sip_txl_handle_expiry(struct kz_sip_txl *txl, uint64_t now) {
  if (!txl) return;
  for (;;) {
    struct kz_heap_node *n = kz_heap_peek(&txl->timers);
    if (!n || n->key > now) break;
    struct kz_sip_txn *t = KZ_CONTAINER_OF(n, struct kz_sip_txn, node);
    int kind = 0;
    for (int i = 1; i < TM_COUNT; i++)
      if (t->deadline[i] < t->deadline[kind]) kind = i;
    kz_ref(t);
    fire(t, (enum tm_kind)kind, now);
    resched(t);
    kz_deref(t);
  }
}

/* ------------------------------------------------------------------ */
/* Accessors                                                           */

enum kz_sip_txn_state kz_sip_txn_state(const struct kz_sip_txn *t) {
  return t ? t->state : KZ_SIP_TXN_TERMINATED;
}
const struct kz_sip_msg *kz_sip_txn_request(const struct kz_sip_txn *t) {
  return t ? t->req : NULL;
}
bool kz_sip_txn_is_server(const struct kz_sip_txn *t) { return t && t->server; }
bool kz_sip_txn_is_invite(const struct kz_sip_txn *t) { return t && t->invite; }
void *kz_sip_txn_user(const struct kz_sip_txn *t) { return t ? t->user : NULL; }
void kz_sip_txn_set_user(struct kz_sip_txn *t, void *user) {
  if (t) t->user = user;
}
uint16_t kz_sip_txn_last_status(const struct kz_sip_txn *t) { return t ? t->last_status : 0; }

const char *kz_sip_txn_state_name(enum kz_sip_txn_state s) {
  switch (s) {
  case KZ_SIP_TXN_CALLING: return "Calling";
  case KZ_SIP_TXN_TRYING: return "Trying";
  case KZ_SIP_TXN_PROCEEDING: return "Proceeding";
  case KZ_SIP_TXN_COMPLETED: return "Completed";
  case KZ_SIP_TXN_CONFIRMED: return "Confirmed";
  case KZ_SIP_TXN_TERMINATED: return "Terminated";
  }
  return "?";
}
