/* test_proxy.c — end-to-end Check suite for the proxy role in the simulator: phones and media servers speaking raw SIP over simulated UDP/TCP, a fake bus with an authn responder. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_bus.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/proxy.h"
#include "kz/sim.h"
#include "kz/sip_build.h"
#include "kz/sip_digest.h"
#include "kz/sip_msg.h"
#include "kz_test.h"

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)
#define REALM "acme.example.com"
#define PROXY_IP "10.0.0.1"

/* ------------------------------------------------------------------ */
/* A scriptable SIP user agent (phone or media server) run as a sim app.
 * It logs every datagram it receives into a test-owned log, and answers
 * by its mode.                                                         */

#define UA_LOG_MAX 512
#define UA_MSG_MAX 3000

enum invite_mode { INV_ANSWER = 0, INV_503, INV_407, INV_RING, INV_SILENT };

/* How a ringing UA ends the INVITE when a CANCEL arrives. */
enum cancel_mode {
  CAN_487 = 0,      /* 200 to the CANCEL, 487 built from the INVITE (RFC 3261 §9.2) */
  CAN_487_SIPP,     /* 487 built from the CANCEL, as SIPp's [last_Via:] does: only the top Via */
  CAN_TOO_LATE,     /* the 200 OK to the INVITE went out just before the CANCEL came in */
  CAN_487_BAD_CSEQ, /* as CAN_487_SIPP, with a CSeq number that is not the INVITE's */
};

struct ua_log {
  int n;
  char msg[UA_LOG_MAX][UA_MSG_MAX];
};

struct ua_cfg {
  const char *ip;
  uint16_t port;
  struct ua_log *log;
  bool options_silent;     /* do not answer OPTIONS */
  enum invite_mode invite; /* how INVITEs are answered */
  bool tcp;                /* also connect a stream to the proxy at start */
  enum cancel_mode on_cancel;
  uint64_t delay_487_ns;   /* the 487 leaves this long after the CANCEL's 200 */
  const char *contact_hp;  /* "host:port" of the 2xx Contact (NULL: ip:port) */
};

struct ua {
  struct kz_env *env;
  struct ua_cfg *cfg;
  struct kz_udp *udp;
  struct kz_stream *s;
  struct kz_prng prng;
  uint8_t invite_raw[UA_MSG_MAX];
  size_t invite_len;
  struct kz_addr invite_src;
  bool invite_final;       /* a final response to the INVITE went out */
  /* A 487 waiting for delay_487_ns. */
  struct kz_timer t487;
  struct kz_buf pending;
  struct kz_addr pending_to;
  int stream_status;       /* on_close status + 1 once the stream ended, else 0 */
};

static void ua_record(struct ua *ua, const uint8_t *data, size_t len) {
  struct ua_log *l = ua->cfg->log;
  if (l->n >= UA_LOG_MAX) return;
  size_t k = len < UA_MSG_MAX - 1 ? len : UA_MSG_MAX - 1;
  memcpy(l->msg[l->n], data, k);
  l->msg[l->n][k] = 0;
  l->n++;
}

static void ua_respond(struct ua *ua, const struct kz_sip_msg *req, const struct kz_addr *to, uint16_t st,
                       const char *extra) {
  struct kz_buf b;
  kz_buf_init(&b);
  char contact[128];
  struct kz_sip_resp_spec rs = {.status = st, .to_tag = KZ_SLICE_LIT("uatag1")};
  if (extra) rs.extra_headers = kz_slice_cstr(extra);
  if (st >= 200 && st < 300 && req->method == KZ_SIP_METHOD_INVITE) {
    if (ua->cfg->contact_hp) snprintf(contact, sizeof contact, "<sip:ua@%s>", ua->cfg->contact_hp);
    else snprintf(contact, sizeof contact, "<sip:ua@%s:%u>", ua->cfg->ip, ua->cfg->port);
    rs.contact = kz_slice_cstr(contact);
  }
  if (req->method == KZ_SIP_METHOD_INVITE && st >= 200) ua->invite_final = true;
  if (kz_sip_build_response(&b, req, &rs, &ua->prng) == 0) kz_udp_send(ua->udp, to, b.data, b.len);
  kz_buf_free(&b);
}

static void ua_send_pending(void *arg) {
  struct ua *ua = arg;
  kz_udp_send(ua->udp, &ua->pending_to, ua->pending.data, ua->pending.len);
  kz_buf_reset(&ua->pending);
}

/* The 487 for the ringing INVITE, after a CANCEL (now or delay_487_ns
 * later).  CAN_487_SIPP copies the CANCEL's header lines the way a SIPp
 * UAS with [last_Via:] does: the CANCEL carries only the proxy's Via
 * (§9.1), so neither does the 487. */
static void ua_terminate_invite(struct ua *ua, const struct kz_sip_msg *cancel, const struct kz_addr *from) {
  struct kz_buf b;
  kz_buf_init(&b);
  if (ua->cfg->on_cancel == CAN_487_SIPP || ua->cfg->on_cancel == CAN_487_BAD_CSEQ) {
    const struct kz_sip_hdr *f = kz_sip_msg_hdr(cancel, KZ_SIP_HDR_FROM);
    const struct kz_sip_hdr *t = kz_sip_msg_hdr(cancel, KZ_SIP_HDR_TO);
    kz_buf_printf(&b,
                  "SIP/2.0 487 Request Terminated\r\nVia: %.*s\r\nFrom: %.*s\r\nTo: %.*s;tag=uatag1\r\n"
                  "Call-ID: %.*s\r\nCSeq: %u INVITE\r\nContact: <sip:ua@%s:%u>\r\nContent-Length: 0\r\n\r\n",
                  (int)cancel->vias[0].raw.len, cancel->vias[0].raw.p, (int)f->value.len, f->value.p,
                  (int)t->value.len, t->value.p, (int)cancel->call_id.len, cancel->call_id.p,
                  (unsigned)cancel->cseq.num + (ua->cfg->on_cancel == CAN_487_BAD_CSEQ),
                  ua->cfg->ip, ua->cfg->port);
    ua->pending_to = *from;
  } else {
    struct kz_sip_msg *inv = NULL;
    if (kz_sip_msg_parse(&inv, ua->invite_raw, ua->invite_len, 0, NULL) == 0) {
      struct kz_sip_resp_spec rs = {.status = 487, .to_tag = KZ_SLICE_LIT("uatag1")};
      kz_sip_build_response(&b, inv, &rs, &ua->prng);
      kz_deref(inv);
    }
    ua->pending_to = ua->invite_src;
  }
  ua->invite_final = true;
  kz_buf_reset(&ua->pending);
  kz_buf_append(&ua->pending, b.data, b.len);
  kz_buf_free(&b);
  if (ua->cfg->delay_487_ns) kz_timer_start(&ua->t487, ua->cfg->delay_487_ns);
  else ua_send_pending(ua);
}

static void ua_on_udp(void *arg, struct kz_udp *u, const struct kz_addr *from, const uint8_t *data, size_t len) {
  struct ua *ua = arg;
  ua_record(ua, data, len);
  struct kz_sip_msg *m = NULL;
  if (kz_sip_msg_parse(&m, data, len, 0, NULL) != 0) return;
  if (m->is_request) {
    switch (m->method) {
    case KZ_SIP_METHOD_OPTIONS:
      if (!ua->cfg->options_silent) ua_respond(ua, m, from, 200, NULL);
      break;
    case KZ_SIP_METHOD_INVITE:
      if (len < sizeof ua->invite_raw) {
        memcpy(ua->invite_raw, data, len);
        ua->invite_len = len;
        ua->invite_src = *from;
      }
      switch (ua->cfg->invite) {
      case INV_ANSWER:
        ua_respond(ua, m, from, 180, NULL);
        ua_respond(ua, m, from, 200, NULL);
        break;
      case INV_503: ua_respond(ua, m, from, 503, NULL); break;
      case INV_407:
        ua_respond(ua, m, from, 407, "Proxy-Authenticate: Digest realm=\"x\", nonce=\"abc\"\r\n");
        break;
      case INV_RING: ua_respond(ua, m, from, 180, NULL); break;
      case INV_SILENT: break;
      }
      break;
    case KZ_SIP_METHOD_CANCEL: {
      /* CAN_TOO_LATE: the INVITE was answered just before the CANCEL
       * came in, so the 200 OK crosses it (§9.2: no effect but a 200). */
      if (ua->cfg->on_cancel == CAN_TOO_LATE && ua->invite_len && !ua->invite_final) {
        struct kz_sip_msg *inv = NULL;
        if (kz_sip_msg_parse(&inv, ua->invite_raw, ua->invite_len, 0, NULL) == 0) {
          ua_respond(ua, inv, &ua->invite_src, 200, NULL);
          kz_deref(inv);
        }
      }
      ua_respond(ua, m, from, 200, NULL);
      if (ua->invite_len && !ua->invite_final) ua_terminate_invite(ua, m, from);
      break;
    }
    case KZ_SIP_METHOD_BYE: ua_respond(ua, m, from, 200, NULL); break;
    default: break;
    }
  }
  kz_deref(m);
}

static void ua_on_data(void *arg, struct kz_stream *s, const uint8_t *data, size_t len) {
  ua_record(arg, data, len);
}
static void ua_on_close(void *arg, struct kz_stream *s, int status) {
  struct ua *ua = arg;
  ua->stream_status = status + 1;
}
static void ua_on_connect(void *arg, struct kz_stream *s) {}
static const struct kz_stream_cbs ua_stream_cbs = {ua_on_connect, ua_on_data, ua_on_close};

static int ua_start(struct kz_env *env, const void *cfgv, void **inst) {
  struct ua *ua = kz_calloc(1, sizeof *ua);
  ua->env = env;
  ua->cfg = (struct ua_cfg *)cfgv;
  kz_env_prng(env, "ua", &ua->prng);
  kz_timer_init(&ua->t487, env, ua_send_pending, ua);
  kz_buf_init(&ua->pending);
  struct kz_addr a = kz_addr_v4(0, ua->cfg->port);
  int rc = kz_udp_bind(env, &a, ua_on_udp, ua, &ua->udp);
  if (rc) {
    kz_free(ua);
    return rc;
  }
  if (ua->cfg->tcp) {
    struct kz_addr pa;
    kz_addr_parse(&pa, PROXY_IP ":5060");
    kz_stream_connect(env, &pa, &ua_stream_cbs, ua, &ua->s);
  }
  *inst = ua;
  return 0;
}

static void ua_stop(void *inst) {
  struct ua *ua = inst;
  kz_timer_stop(&ua->t487);
  kz_buf_free(&ua->pending);
  kz_stream_close(ua->s);
  kz_udp_close(ua->udp);
  kz_free(ua);
}

static const struct kz_sim_app ua_app = {"ua", ua_start, ua_stop};
static const struct kz_sim_app proxy_app = {"proxy", kz_proxy_start, kz_proxy_stop};

/* ------------------------------------------------------------------ */
/* The world: a proxy, three media servers, phones.                    */

enum { FS1, FS2, FS3, ALICE, BOB, NATPH, ATTACKER, N_UA };

static const char *const ua_names[N_UA] = {"fs1", "fs2", "fs3", "alice", "bob", "natphone", "attacker"};
static const char *const ua_ips[N_UA] = {"10.0.0.5", "10.0.0.6", "10.0.0.7", "192.0.2.10",
                                         "192.0.2.20", "198.51.100.7", "203.0.113.66"};

struct world {
  struct kz_sim *sim;
  struct fb_broker br;
  struct kz_proxy_config cfg;
  struct kz_sim_proc *proxy;
  struct kz_sim_proc *ua[N_UA];
  struct ua_cfg ucfg[N_UA];
  struct ua_log logs[N_UA];
  struct kz_addr proxy_addr;
  struct kz_sip_digest_client dc[N_UA];
  int cseq;
};

static struct world *world_new(size_t n_media) {
  struct world *w = calloc(1, sizeof *w);
  ck_assert_int_eq(kz_sim_new(&w->sim, 42), 0);
  kz_sim_set_cost_zero(w->sim);
  kz_sim_set_log_level(w->sim, KZ_LOG_WARN);
  kz_proxy_config_defaults(&w->cfg);
  snprintf(w->cfg.listen, sizeof w->cfg.listen, PROXY_IP ":5060");
  for (size_t i = 0; i < n_media; i++)
    snprintf(w->cfg.media_servers[i], sizeof w->cfg.media_servers[i], "sip:%s:5060", ua_ips[FS1 + i]);
  w->cfg.n_media_servers = n_media;
  w->cfg.bus_factory = fb_factory;
  w->cfg.bus_arg = &w->br;
  fb_add_user(&w->br, "alice", REALM, "alicepw");
  fb_add_user(&w->br, "bob", REALM, "bobpw");
  fb_add_user(&w->br, "nat", REALM, "natpw");
  kz_addr_parse(&w->proxy_addr, PROXY_IP ":5060");
  for (int i = 0; i < N_UA; i++) {
    w->ucfg[i].port = 5060;
    w->ucfg[i].ip = ua_ips[i];
    w->ucfg[i].log = &w->logs[i];
    kz_sip_digest_client_init(&w->dc[i]);
  }
  w->cseq = 1;
  return w;
}

/* Starts everything (after the test adjusted cfg/ucfg). */
static void world_start(struct world *w) {
  struct kz_addr a;
  struct kz_sim_host *h;
  kz_addr_parse(&a, PROXY_IP);
  ck_assert_int_eq(kz_sim_host_add(w->sim, "proxy", &a, &h), 0);
  ck_assert_int_eq(kz_sim_proc_add(h, "proxy", &proxy_app, &w->cfg, &w->proxy), 0);
  for (int i = 0; i < N_UA; i++) {
    kz_addr_parse(&a, ua_ips[i]);
    ck_assert_int_eq(kz_sim_host_add(w->sim, ua_names[i], &a, &h), 0);
    ck_assert_int_eq(kz_sim_proc_add(h, ua_names[i], &ua_app, &w->ucfg[i], &w->ua[i]), 0);
  }
  kz_sim_run_for(w->sim, 10 * MS); /* bus up */
}

static void world_free(struct world *w) {
  kz_sim_free(w->sim);
  free(w);
}

static struct kz_proxy *proxy_of(struct world *w) { return kz_sim_proc_instance(w->proxy); }

static struct kz_proxy_stats stats(struct world *w) {
  struct kz_proxy_stats s;
  kz_proxy_get_stats(proxy_of(w), &s);
  return s;
}

static void send_raw(struct world *w, int who, const char *text) {
  struct ua *ua = kz_sim_proc_instance(w->ua[who]);
  ck_assert_int_eq(kz_udp_send(ua->udp, &w->proxy_addr, text, strlen(text)), 0);
}

static void run(struct world *w, uint64_t ns) { ck_assert_int_eq(kz_sim_run_for(w->sim, ns), 0); }

/* The last message of `who`'s log starting with `prefix` (NULL: none),
 * searching from index `from`. */
static const char *find_msg(struct world *w, int who, int from, const char *prefix) {
  const struct ua_log *l = &w->logs[who];
  const char *found = NULL;
  for (int i = from; i < l->n; i++)
    if (!strncmp(l->msg[i], prefix, strlen(prefix))) found = l->msg[i];
  return found;
}

static int count_msgs(struct world *w, int who, int from, const char *prefix) {
  int n = 0;
  for (int i = from; i < w->logs[who].n; i++)
    if (!strncmp(w->logs[who].msg[i], prefix, strlen(prefix))) n++;
  return n;
}

/* The value of header `name` in a raw message (first one), copied. */
static bool hdr_value(const char *msg, const char *name, char *out, size_t n) {
  struct kz_sip_msg *m = NULL;
  if (kz_sip_msg_parse(&m, msg, strlen(msg), 0, NULL) != 0) return false;
  const struct kz_sip_hdr *h = kz_sip_msg_hdr_by_name(m, kz_slice_cstr(name));
  bool ok = false;
  if (h) {
    snprintf(out, n, "%.*s", (int)h->value.len, h->value.p);
    ok = true;
  }
  kz_deref(m);
  return ok;
}

/* ------------------------------------------------------------------ */
/* Phone helpers                                                       */

static void build_register(struct world *w, int who, const char *user, const char *contact,
                           const char *expires_hdr, const char *callid, int cseq, const char *auth,
                           char *out, size_t n) {
  snprintf(out, n,
           "REGISTER sip:" REALM " SIP/2.0\r\n"
           "Via: SIP/2.0/UDP %s:5060;branch=z9hG4bK-reg-%d-%d;rport\r\n"
           "Max-Forwards: 70\r\n"
           "From: <sip:%s@" REALM ">;tag=ft%d\r\n"
           "To: <sip:%s@" REALM ">\r\n"
           "Call-ID: %s\r\n"
           "CSeq: %d REGISTER\r\n"
           "Contact: %s\r\n"
           "%s"
           "%s%s%s"
           "User-Agent: kz-test-phone\r\n"
           "Content-Length: 0\r\n\r\n",
           ua_ips[who], who, cseq, user, who, user, callid, cseq, contact, expires_hdr ? expires_hdr : "",
           auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
}

/* Answers the WWW-Authenticate of a 401 for `user`/`password`. */
static void answer_401(struct world *w, int who, const char *resp401, const char *user, const char *password,
                       char *out, size_t n) {
  char chal[600];
  ck_assert(hdr_value(resp401, "WWW-Authenticate", chal, sizeof chal));
  struct kz_slice ch = kz_slice_cstr(chal);
  struct kz_prng g;
  kz_prng_seed(&g, 7);
  struct kz_buf b;
  kz_buf_init(&b);
  struct kz_sip_digest_answer_opts o = {.challenges = &ch, .nchallenges = 1, .username = kz_slice_cstr(user),
                                        .password = kz_slice_cstr(password),
                                        .method = KZ_SLICE_LIT("REGISTER"),
                                        .uri = KZ_SLICE_LIT("sip:" REALM), .prng = &g};
  ck_assert_int_eq(kz_sip_digest_answer(&w->dc[who], &b, &o, NULL, 0), 0);
  snprintf(out, n, "%s", (const char *)b.data);
  kz_buf_free(&b);
}

/* Full REGISTER with a challenge: returns the final status line seen. */
static int do_register(struct world *w, int who, const char *user, const char *password, const char *contact,
                       const char *expires_hdr, const char *callid, char *auth_out, size_t auth_n) {
  char req[2000], auth[600];
  int mark = w->logs[who].n;
  build_register(w, who, user, contact, expires_hdr, callid, w->cseq++, NULL, req, sizeof req);
  send_raw(w, who, req);
  run(w, 50 * MS);
  const char *r = find_msg(w, who, mark, "SIP/2.0 ");
  if (!r) return 0;
  if (strncmp(r, "SIP/2.0 401", 11) != 0) return atoi(r + 8);
  answer_401(w, who, r, user, password, auth, sizeof auth);
  if (auth_out) snprintf(auth_out, auth_n, "%s", auth);
  mark = w->logs[who].n;
  build_register(w, who, user, contact, expires_hdr, callid, w->cseq++, auth, req, sizeof req);
  send_raw(w, who, req);
  run(w, 50 * MS);
  r = find_msg(w, who, mark, "SIP/2.0 ");
  return r ? atoi(r + 8) : 0;
}

static unsigned cid_hash(const char *callid) { return (unsigned)(kz_hash64(callid, strlen(callid), 1) & 0xffffff); }

/* An INVITE from `who` with From user `from_user` and extra header
 * lines `extra` ("" for none). */
static void build_invite_ex(int who, const char *from_user, const char *ruri, const char *callid, int cseq,
                            const char *extra, char *out, size_t n) {
  snprintf(out, n,
           "INVITE %s SIP/2.0\r\n"
           "Via: SIP/2.0/UDP %s:5060;branch=z9hG4bK-inv-%06x-%d;rport\r\n"
           "Max-Forwards: 70\r\n"
           "From: <sip:%s@" REALM ">;tag=caller1\r\n"
           "To: <%s>\r\n"
           "Call-ID: %s\r\n"
           "CSeq: %d INVITE\r\n"
           "Contact: <sip:%s@%s:5060>\r\n"
           "%s"
           "Content-Type: application/sdp\r\n"
           "Content-Length: 4\r\n\r\nv=0\n",
           ruri, ua_ips[who], cid_hash(callid), cseq, from_user, ruri, callid, cseq, ua_names[who],
           ua_ips[who], extra);
}

static void build_invite(int who, const char *ruri, const char *callid, int cseq, char *out, size_t n) {
  build_invite_ex(who, ua_names[who], ruri, callid, cseq, "", out, n);
}

/* A Call-ID whose Call-ID hash makes the dispatcher try server index
 * `first` of `k` first (the algorithm 0 rotation). */
static void callid_first(size_t k, size_t first, char *out, size_t n) {
  for (int i = 0;; i++) {
    snprintf(out, n, "call-%d@test", i);
    if (kz_hash64(out, strlen(out), 0) % k == first) return;
  }
}

/* ------------------------------------------------------------------ */
/* Registrar                                                           */

START_TEST(test_register_ok) {
  struct world *w = world_new(2);
  world_start(w);
  int st = do_register(w, ALICE, "alice", "alicepw", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n",
                       "reg-1", NULL, 0);
  ck_assert_int_eq(st, 200);
  ck_assert_uint_eq(kz_proxy_binding_count(proxy_of(w), "alice@" REALM), 1);
  const char *ok = find_msg(w, ALICE, 0, "SIP/2.0 200");
  ck_assert_ptr_nonnull(strstr(ok, "expires=600"));
  ck_assert_int_eq(w->br.authn_reqs, 1);
  ck_assert_int_eq(w->br.reg_success, 1);
  ck_assert_ptr_nonnull(strstr(w->br.last_reg_success, "\"Username\":\"alice\""));
  ck_assert_ptr_nonnull(strstr(w->br.last_reg_success, "\"Realm\":\"" REALM "\""));
  ck_assert_ptr_nonnull(strstr(w->br.last_reg_success, "\"Proxy-Path\":\"sip:" PROXY_IP ":5060\""));
  ck_assert_ptr_nonnull(strstr(w->br.last_reg_success, "\"Network-IP\":\"192.0.2.10\""));
  ck_assert_ptr_nonnull(strstr(w->br.last_reg_success, "\"First-Registration\":true"));
  ck_assert_ptr_nonnull(strstr(w->br.last_reg_success, "\"Account-ID\":\"acct0001\""));
  /* The 401 carried a digest challenge for the From/To realm. */
  const char *c = find_msg(w, ALICE, 0, "SIP/2.0 401");
  ck_assert_ptr_nonnull(strstr(c, "realm=\"" REALM "\""));
  world_free(w);
}
END_TEST

START_TEST(test_register_wrong_password) {
  struct world *w = world_new(1);
  world_start(w);
  int st = do_register(w, ALICE, "alice", "WRONG", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n", "reg-2",
                       NULL, 0);
  ck_assert_int_eq(st, 401);
  ck_assert_uint_eq(kz_proxy_binding_count(proxy_of(w), "alice@" REALM), 0);
  ck_assert_int_eq(w->br.reg_success, 0);
  ck_assert_uint_eq(stats(w).auth_failures, 1);
  world_free(w);
}
END_TEST

START_TEST(test_register_unknown_user) {
  struct world *w = world_new(1);
  world_start(w);
  /* authn_err: challenged again. */
  int st = do_register(w, ALICE, "mallory", "x", "<sip:mallory@192.0.2.10:5060>", "Expires: 600\r\n", "reg-u",
                       NULL, 0);
  ck_assert_int_eq(st, 401);
  ck_assert_int_eq(w->br.authn_reqs, 1);
  world_free(w);
}
END_TEST

START_TEST(test_register_interval_too_brief) {
  struct world *w = world_new(1);
  world_start(w);
  char req[2000];
  build_register(w, ALICE, "alice", "<sip:alice@192.0.2.10:5060>", "Expires: 60\r\n", "reg-3", 1, NULL, req,
                 sizeof req);
  send_raw(w, ALICE, req);
  run(w, 50 * MS);
  const char *r = find_msg(w, ALICE, 0, "SIP/2.0 423 Interval Too Brief");
  ck_assert_ptr_nonnull(r);
  char v[32];
  ck_assert(hdr_value(r, "Min-Expires", v, sizeof v));
  ck_assert_str_eq(v, "300");
  ck_assert_int_eq(w->br.authn_reqs, 0);
  /* Missing expiry altogether: 400. */
  build_register(w, ALICE, "alice", "<sip:alice@192.0.2.10:5060>", NULL, "reg-3b", 2, NULL, req, sizeof req);
  send_raw(w, ALICE, req);
  run(w, 50 * MS);
  ck_assert_ptr_nonnull(find_msg(w, ALICE, 0, "SIP/2.0 400 Missing Expires"));
  world_free(w);
}
END_TEST

START_TEST(test_register_clamped_and_unregister) {
  struct world *w = world_new(1);
  world_start(w);
  char auth[600];
  int st = do_register(w, ALICE, "alice", "alicepw", "<sip:alice@192.0.2.10:5060>", "Expires: 86400\r\n",
                       "reg-4", auth, sizeof auth);
  ck_assert_int_eq(st, 200);
  ck_assert_ptr_nonnull(strstr(find_msg(w, ALICE, 0, "SIP/2.0 200"), "expires=3600"));
  /* A second contact for the same AOR. */
  st = do_register(w, ALICE, "alice", "alicepw", "<sip:alice@192.0.2.10:5070>", "Expires: 600\r\n", "reg-4b",
                   NULL, 0);
  ck_assert_int_eq(st, 200);
  ck_assert_uint_eq(kz_proxy_binding_count(proxy_of(w), "alice@" REALM), 2);
  /* Unregister one with Expires: 0. */
  st = do_register(w, ALICE, "alice", "alicepw", "<sip:alice@192.0.2.10:5070>", "Expires: 0\r\n", "reg-4b",
                   NULL, 0);
  ck_assert_int_eq(st, 200);
  ck_assert_uint_eq(kz_proxy_binding_count(proxy_of(w), "alice@" REALM), 1);
  ck_assert_ptr_nonnull(strstr(w->br.last_reg_success, "\"Expires\":0"));
  /* "*" with Expires 0 removes all. */
  st = do_register(w, ALICE, "alice", "alicepw", "*", "Expires: 0\r\n", "reg-4c", NULL, 0);
  ck_assert_int_eq(st, 200);
  ck_assert_uint_eq(kz_proxy_binding_count(proxy_of(w), "alice@" REALM), 0);
  world_free(w);
}
END_TEST

START_TEST(test_register_out_of_order_cseq) {
  struct world *w = world_new(1);
  world_start(w);
  w->cseq = 100;
  char auth[600], req[2000];
  int st = do_register(w, ALICE, "alice", "alicepw", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n",
                       "reg-5", auth, sizeof auth);
  ck_assert_int_eq(st, 200);
  /* Same Call-ID, lower CSeq: §10.3 step 7, the request fails. */
  int mark = w->logs[ALICE].n;
  char auth2[600];
  answer_401(w, ALICE, find_msg(w, ALICE, 0, "SIP/2.0 401"), "alice", "alicepw", auth2, sizeof auth2);
  build_register(w, ALICE, "alice", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n", "reg-5", 50, auth2, req,
                 sizeof req);
  send_raw(w, ALICE, req);
  run(w, 50 * MS);
  ck_assert_ptr_nonnull(find_msg(w, ALICE, mark, "SIP/2.0 400 Invalid CSeq number"));
  world_free(w);
}
END_TEST

START_TEST(test_reregister_from_cache) {
  struct world *w = world_new(1);
  world_start(w);
  char auth[600], req[2000];
  int st = do_register(w, ALICE, "alice", "alicepw", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n",
                       "reg-6", auth, sizeof auth);
  ck_assert_int_eq(st, 200);
  ck_assert_int_eq(w->br.authn_reqs, 1);
  /* Re-register with the same challenge (nc=2): served from the cache. */
  run(w, 30 * SEC);
  char auth2[600];
  answer_401(w, ALICE, find_msg(w, ALICE, 0, "SIP/2.0 401"), "alice", "alicepw", auth2, sizeof auth2);
  int mark = w->logs[ALICE].n;
  build_register(w, ALICE, "alice", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n", "reg-6", 10, auth2, req,
                 sizeof req);
  send_raw(w, ALICE, req);
  run(w, 50 * MS);
  ck_assert_ptr_nonnull(find_msg(w, ALICE, mark, "SIP/2.0 200"));
  ck_assert_int_eq(w->br.authn_reqs, 1);
  ck_assert_uint_eq(stats(w).auth_cache_hits, 1);
  ck_assert_int_eq(w->br.reg_success, 2);
  ck_assert_ptr_nonnull(strstr(w->br.last_reg_success, "\"First-Registration\":false"));
  world_free(w);
}
END_TEST

/* A retransmitted REGISTER whose 200 was lost (SIPp resends it after
 * T1) carries a nonce count already seen: it gets the 200 again, the
 * bindings untouched, while a replay of those credentials in a new
 * request (another CSeq) is still challenged (found by bench/proxy). */
START_TEST(test_register_retransmission) {
  struct world *w = world_new(1);
  world_start(w);
  char auth[600], req[2000];
  int st = do_register(w, ALICE, "alice", "alicepw", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n",
                       "reg-rt", auth, sizeof auth);
  ck_assert_int_eq(st, 200);
  ck_assert_int_eq(w->br.reg_success, 1);
  int applied_cseq = w->cseq - 1;
  /* The same request again, byte for byte. */
  int mark = w->logs[ALICE].n;
  build_register(w, ALICE, "alice", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n", "reg-rt", applied_cseq,
                 auth, req, sizeof req);
  send_raw(w, ALICE, req);
  run(w, 50 * MS);
  const char *r = find_msg(w, ALICE, mark, "SIP/2.0 ");
  ck_assert_ptr_nonnull(r);
  ck_assert_msg(strncmp(r, "SIP/2.0 200", 11) == 0, "%s", r);
  ck_assert_ptr_nonnull(strstr(r, "<sip:alice@192.0.2.10:5060>;expires="));
  ck_assert_uint_eq(kz_proxy_binding_count(proxy_of(w), "alice@" REALM), 1);
  ck_assert_int_eq(w->br.reg_success, 1); /* nothing published again */
  /* The same credentials (same nonce count) in a new request: replayed. */
  mark = w->logs[ALICE].n;
  build_register(w, ALICE, "alice", "<sip:alice@192.0.2.10:5060>", "Expires: 0\r\n", "reg-rt", applied_cseq + 1,
                 auth, req, sizeof req);
  send_raw(w, ALICE, req);
  run(w, 50 * MS);
  r = find_msg(w, ALICE, mark, "SIP/2.0 ");
  ck_assert_ptr_nonnull(r);
  ck_assert_msg(strncmp(r, "SIP/2.0 401", 11) == 0, "%s", r);
  ck_assert_uint_eq(kz_proxy_binding_count(proxy_of(w), "alice@" REALM), 1);
  world_free(w);
}
END_TEST

/* A challenge answered late (the phone's REGISTER was lost and is
 * resent seconds later) after many other registrations used their nonces
 * meanwhile: still accepted, not stale=true (found by bench/proxy at
 * 1000 registrations/s, where 1024 nonce-count entries lasted 1 s). */
START_TEST(test_register_late_answer) {
  struct world *w = world_new(1);
  world_start(w);
  char req[2000], auth[600];
  int mark = w->logs[ALICE].n;
  build_register(w, ALICE, "alice", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n", "late-1", 1, NULL, req,
                 sizeof req);
  send_raw(w, ALICE, req);
  run(w, 50 * MS);
  const char *r401 = find_msg(w, ALICE, mark, "SIP/2.0 401");
  ck_assert_ptr_nonnull(r401);
  char late401[UA_MSG_MAX];
  snprintf(late401, sizeof late401, "%s", r401);
  for (int i = 0; i < 1500; i++) {
    char cid[32];
    snprintf(cid, sizeof cid, "other-%d", i);
    /* The UA log is bounded: start it over (the world keeps running). */
    w->logs[ALICE].n = 0;
    ck_assert_int_eq(do_register(w, ALICE, "alice", "alicepw", "<sip:alice@192.0.2.10:5060>",
                                 "Expires: 600\r\n", cid, NULL, 0), 200);
  }
  w->logs[ALICE].n = 0;
  answer_401(w, ALICE, late401, "alice", "alicepw", auth, sizeof auth);
  build_register(w, ALICE, "alice", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n", "late-1", 2, auth, req,
                 sizeof req);
  send_raw(w, ALICE, req);
  run(w, 50 * MS);
  const char *r = find_msg(w, ALICE, 0, "SIP/2.0 ");
  ck_assert_ptr_nonnull(r);
  ck_assert_msg(strncmp(r, "SIP/2.0 200", 11) == 0, "%s", r);
  world_free(w);
}
END_TEST

START_TEST(test_authn_timeout_drops) {
  struct world *w = world_new(1);
  w->br.authn_silent = true;
  world_start(w);
  int mark = w->logs[ALICE].n;
  char req[2000], auth[600];
  build_register(w, ALICE, "alice", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n", "reg-7", 1, NULL, req,
                 sizeof req);
  send_raw(w, ALICE, req);
  run(w, 50 * MS);
  const char *c = find_msg(w, ALICE, mark, "SIP/2.0 401");
  ck_assert_ptr_nonnull(c);
  answer_401(w, ALICE, c, "alice", "alicepw", auth, sizeof auth);
  mark = w->logs[ALICE].n;
  build_register(w, ALICE, "alice", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n", "reg-7", 2, auth, req,
                 sizeof req);
  send_raw(w, ALICE, req);
  /* A retransmission while waiting does not make a second authn_req. */
  run(w, 500 * MS);
  send_raw(w, ALICE, req);
  run(w, 5 * SEC);
  ck_assert_int_eq(w->logs[ALICE].n, mark); /* no answer at all */
  ck_assert_int_eq(w->br.authn_reqs, 1);
  ck_assert_uint_eq(stats(w).authn_timeouts, 1);
  ck_assert_uint_eq(kz_proxy_binding_count(proxy_of(w), "alice@" REALM), 0);
  world_free(w);
}
END_TEST

START_TEST(test_reg_query_and_flush) {
  struct world *w = world_new(1);
  world_start(w);
  int st = do_register(w, ALICE, "alice", "alicepw", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n",
                       "reg-8", NULL, 0);
  ck_assert_int_eq(st, 200);
  fb_publish(&w->br, "registrar", "registration.query.acme%2Eexample%2Ecom.alice",
             "{\"Event-Category\":\"directory\",\"Event-Name\":\"reg_query\",\"App-Name\":\"ecallmgr\","
             "\"App-Version\":\"4.3\",\"Msg-ID\":\"q1\",\"Server-ID\":\"test-q\",\"Realm\":\"" REALM
             "\",\"Username\":\"alice\"}");
  run(w, 20 * MS);
  ck_assert_int_eq(w->br.targeted, 1);
  ck_assert_ptr_nonnull(strstr(w->br.last_targeted, "\"Event-Name\":\"reg_query_resp\""));
  ck_assert_ptr_nonnull(strstr(w->br.last_targeted, "\"Msg-ID\":\"q1\""));
  ck_assert_ptr_nonnull(strstr(w->br.last_targeted, "sip:alice@192.0.2.10:5060"));
  fb_publish(&w->br, "registrar", "registration.flush.acme%2Eexample%2Ecom",
             "{\"Event-Category\":\"directory\",\"Event-Name\":\"reg_flush\",\"App-Name\":\"crossbar\","
             "\"App-Version\":\"4.3\",\"Msg-ID\":\"f1\",\"Realm\":\"" REALM "\",\"Username\":\"alice\"}");
  run(w, 20 * MS);
  ck_assert_uint_eq(kz_proxy_binding_count(proxy_of(w), "alice@" REALM), 0);
  /* Credentials were flushed too: the next REGISTER asks the bus. */
  st = do_register(w, ALICE, "alice", "alicepw", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n", "reg-8b",
                   NULL, 0);
  ck_assert_int_eq(st, 200);
  ck_assert_int_eq(w->br.authn_reqs, 2);
  world_free(w);
}
END_TEST

START_TEST(test_auth_failure_ban) {
  struct world *w = world_new(1);
  world_start(w);
  int st = 0;
  for (int i = 0; i < 3; i++) {
    st = do_register(w, ALICE, "alice", "bad", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n", "reg-9",
                     NULL, 0);
    ck_assert_int_eq(st, 401);
  }
  st = do_register(w, ALICE, "alice", "bad", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n", "reg-9", NULL,
                   0);
  ck_assert_int_eq(st, 403);
  const char *f = find_msg(w, ALICE, 0, "SIP/2.0 403");
  char v[16];
  ck_assert(hdr_value(f, "Retry-After", v, sizeof v));
  ck_assert_str_eq(v, "3600");
  /* Even the right password is refused while banned, without the bus. */
  int before = w->br.authn_reqs;
  st = do_register(w, ALICE, "alice", "alicepw", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n", "reg-9",
                   NULL, 0);
  ck_assert_int_eq(st, 403);
  ck_assert_int_eq(w->br.authn_reqs, before);
  /* Another user from another address is unaffected. */
  st = do_register(w, BOB, "bob", "bobpw", "<sip:bob@192.0.2.20:5060>", "Expires: 600\r\n", "reg-9b", NULL, 0);
  ck_assert_int_eq(st, 200);
  world_free(w);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Calls                                                               */

START_TEST(test_call_to_media_server) {
  struct world *w = world_new(1);
  world_start(w);
  char inv[2000];
  build_invite(ALICE, "sip:2000@" REALM, "call-a@test", 1, inv, sizeof inv);
  send_raw(w, ALICE, inv);
  run(w, 50 * MS);
  /* The media server got it with our Via on top, a Record-Route and
   * Max-Forwards decremented; the R-URI is unchanged. */
  const char *fi = find_msg(w, FS1, 0, "INVITE sip:2000@" REALM " SIP/2.0");
  ck_assert_ptr_nonnull(fi);
  ck_assert_ptr_nonnull(strstr(fi, "Via: SIP/2.0/UDP " PROXY_IP ":5060;branch=z9hG4bKkzp"));
  ck_assert_ptr_nonnull(strstr(fi, "Record-Route: <sip:" PROXY_IP ":5060;lr>"));
  ck_assert_ptr_nonnull(strstr(fi, "Max-Forwards: 69"));
  ck_assert_ptr_nonnull(strstr(fi, "received=192.0.2.10;rport=5060"));
  ck_assert_ptr_nonnull(strstr(fi, "\r\n\r\nv=0\n"));
  ck_assert_ptr_nonnull(find_msg(w, ALICE, 0, "SIP/2.0 100"));
  ck_assert_ptr_nonnull(find_msg(w, ALICE, 0, "SIP/2.0 180"));
  const char *ok = find_msg(w, ALICE, 0, "SIP/2.0 200");
  ck_assert_ptr_nonnull(ok);
  ck_assert_ptr_nonnull(strstr(ok, "Record-Route: <sip:" PROXY_IP ":5060;lr>"));
  ck_assert_ptr_null(strstr(ok, "branch=z9hG4bKkzp")); /* our Via was removed */
  /* ACK and BYE follow the route set through the proxy. */
  char req[1500];
  snprintf(req, sizeof req,
           "ACK sip:ua@10.0.0.5:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-ack1\r\n"
           "Route: <sip:" PROXY_IP ":5060;lr>\r\nMax-Forwards: 70\r\nFrom: <sip:alice@" REALM ">;tag=caller1\r\n"
           "To: <sip:2000@" REALM ">;tag=uatag1\r\nCall-ID: call-a@test\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n");
  send_raw(w, ALICE, req);
  run(w, 50 * MS);
  const char *ack = find_msg(w, FS1, 0, "ACK sip:ua@10.0.0.5:5060 SIP/2.0");
  ck_assert_ptr_nonnull(ack);
  ck_assert_ptr_null(strstr(ack, "Route:"));
  snprintf(req, sizeof req,
           "BYE sip:ua@10.0.0.5:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-bye1\r\n"
           "Route: <sip:" PROXY_IP ":5060;lr>\r\nMax-Forwards: 70\r\nFrom: <sip:alice@" REALM ">;tag=caller1\r\n"
           "To: <sip:2000@" REALM ">;tag=uatag1\r\nCall-ID: call-a@test\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n");
  int mark = w->logs[ALICE].n;
  send_raw(w, ALICE, req);
  run(w, 50 * MS);
  ck_assert_ptr_nonnull(find_msg(w, FS1, 0, "BYE sip:ua@10.0.0.5:5060"));
  ck_assert_ptr_nonnull(find_msg(w, ALICE, mark, "SIP/2.0 200"));
  world_free(w);
}
END_TEST

START_TEST(test_call_from_media_to_device) {
  struct world *w = world_new(1);
  world_start(w);
  ck_assert_int_eq(do_register(w, ALICE, "alice", "alicepw", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n",
                               "reg-c", NULL, 0),
                   200);
  ck_assert_int_eq(do_register(w, ALICE, "alice", "alicepw", "<sip:alice@192.0.2.10:5070>", "Expires: 600\r\n",
                               "reg-c2", NULL, 0),
                   200);
  char inv[2000];
  build_invite(FS1, "sip:alice@" REALM, "call-b@test", 1, inv, sizeof inv);
  send_raw(w, FS1, inv);
  run(w, 100 * MS);
  /* Forked to the registered contact on 5060 (the one on 5070 has no
   * listener in this world). */
  const char *di = find_msg(w, ALICE, 0, "INVITE sip:alice@192.0.2.10:5060 SIP/2.0");
  ck_assert_ptr_nonnull(di);
  ck_assert_ptr_nonnull(strstr(di, "Record-Route:"));
  ck_assert_ptr_nonnull(find_msg(w, FS1, 0, "SIP/2.0 180"));
  ck_assert_ptr_nonnull(find_msg(w, FS1, 0, "SIP/2.0 200"));
  ck_assert_uint_ge(stats(w).forwarded, 2);
  world_free(w);
}
END_TEST

START_TEST(test_device_not_registered) {
  struct world *w = world_new(1);
  world_start(w);
  char inv[2000];
  build_invite(FS1, "sip:nobody@" REALM, "call-c@test", 1, inv, sizeof inv);
  send_raw(w, FS1, inv);
  run(w, 50 * MS);
  ck_assert_ptr_nonnull(find_msg(w, FS1, 0, "SIP/2.0 410 Not registered"));
  world_free(w);
}
END_TEST

START_TEST(test_failover_on_503) {
  struct world *w = world_new(2);
  w->ucfg[FS1].invite = INV_503;
  world_start(w);
  char cid[64], inv[2000];
  callid_first(2, 0, cid, sizeof cid); /* fs1 first */
  build_invite(ALICE, "sip:2000@" REALM, cid, 1, inv, sizeof inv);
  send_raw(w, ALICE, inv);
  run(w, 100 * MS);
  ck_assert_int_eq(count_msgs(w, FS1, 0, "INVITE "), 1);
  ck_assert_int_eq(count_msgs(w, FS2, 0, "INVITE "), 1);
  ck_assert_ptr_nonnull(find_msg(w, ALICE, 0, "SIP/2.0 200"));
  ck_assert_ptr_null(find_msg(w, ALICE, 0, "SIP/2.0 503"));
  ck_assert_uint_eq(stats(w).failovers, 1);
  /* The proxy ACKed fs1's 503 itself (hop-by-hop). */
  ck_assert_ptr_nonnull(find_msg(w, FS1, 0, "ACK "));
  world_free(w);
}
END_TEST

START_TEST(test_failover_limit) {
  struct world *w = world_new(3);
  w->ucfg[FS1].invite = INV_503;
  w->ucfg[FS2].invite = INV_503;
  w->ucfg[FS3].invite = INV_503;
  w->cfg.max_failover = 1;
  world_start(w);
  char inv[2000];
  build_invite(ALICE, "sip:2000@" REALM, "call-lim@test", 1, inv, sizeof inv);
  send_raw(w, ALICE, inv);
  run(w, 100 * MS);
  int tried = count_msgs(w, FS1, 0, "INVITE ") + count_msgs(w, FS2, 0, "INVITE ") +
              count_msgs(w, FS3, 0, "INVITE ");
  ck_assert_int_eq(tried, 2);
  ck_assert_ptr_nonnull(find_msg(w, ALICE, 0, "SIP/2.0 486 Unable to Comply"));
  world_free(w);
}
END_TEST

START_TEST(test_failover_on_silence) {
  struct world *w = world_new(2);
  w->ucfg[FS1].invite = INV_SILENT;
  world_start(w);
  char cid[64], inv[2000];
  callid_first(2, 0, cid, sizeof cid);
  build_invite(ALICE, "sip:2000@" REALM, cid, 1, inv, sizeof inv);
  send_raw(w, ALICE, inv);
  run(w, 6 * SEC);
  ck_assert_int_ge(count_msgs(w, FS1, 0, "INVITE "), 1);
  ck_assert_int_eq(count_msgs(w, FS2, 0, "INVITE "), 1);
  ck_assert_ptr_nonnull(find_msg(w, ALICE, 0, "SIP/2.0 200"));
  /* The silent server is out of the set until a probe answers. */
  ck_assert(!kz_proxy_server_is_up(proxy_of(w), "10.0.0.5:5060"));
  world_free(w);
}
END_TEST

START_TEST(test_all_media_down_480) {
  struct world *w = world_new(2);
  w->ucfg[FS1].options_silent = true;
  w->ucfg[FS2].options_silent = true;
  world_start(w);
  size_t up = 9;
  kz_proxy_server_count(proxy_of(w), &up);
  ck_assert_uint_eq(up, 2);
  run(w, 45 * SEC); /* probes every 10 s, down after 3 failures */
  ck_assert_uint_eq(kz_proxy_server_count(proxy_of(w), &up), 2);
  ck_assert_uint_eq(up, 0);
  ck_assert_uint_ge(stats(w).probes_sent, 6);
  ck_assert_ptr_nonnull(find_msg(w, FS1, 0, "OPTIONS sip:10.0.0.5:5060"));
  char inv[2000];
  build_invite(ALICE, "sip:2000@" REALM, "call-d@test", 1, inv, sizeof inv);
  send_raw(w, ALICE, inv);
  run(w, 50 * MS);
  ck_assert_ptr_nonnull(find_msg(w, ALICE, 0, "SIP/2.0 480 All servers busy"));
  ck_assert_int_eq(count_msgs(w, FS1, 0, "INVITE "), 0);
  /* A server answering probes again comes back. */
  w->ucfg[FS2].options_silent = false;
  run(w, 21 * SEC);
  ck_assert(kz_proxy_server_is_up(proxy_of(w), "10.0.0.6:5060"));
  world_free(w);
}
END_TEST

START_TEST(test_407_sticky) {
  struct world *w = world_new(2);
  w->ucfg[FS1].invite = INV_407;
  w->ucfg[FS2].invite = INV_407;
  world_start(w);
  char inv[2000];
  build_invite(ALICE, "sip:2000@" REALM, "call-s@test", 1, inv, sizeof inv);
  send_raw(w, ALICE, inv);
  run(w, 50 * MS);
  ck_assert_ptr_nonnull(find_msg(w, ALICE, 0, "SIP/2.0 407"));
  int fs = count_msgs(w, FS1, 0, "INVITE ") ? FS1 : FS2;
  /* The re-INVITE with credentials (new CSeq) lands on the same server. */
  build_invite(ALICE, "sip:2000@" REALM, "call-s@test", 2, inv, sizeof inv);
  send_raw(w, ALICE, inv);
  run(w, 50 * MS);
  ck_assert_int_eq(count_msgs(w, fs, 0, "INVITE "), 2);
  ck_assert_int_eq(count_msgs(w, fs == FS1 ? FS2 : FS1, 0, "INVITE "), 0);
  world_free(w);
}
END_TEST

/* The phone's CANCEL for its INVITE (same top Via branch, §9.1). */
static void send_cancel(struct world *w, int who, const char *callid, int cseq) {
  char req[1500];
  snprintf(req, sizeof req,
           "CANCEL sip:2000@" REALM " SIP/2.0\r\nVia: SIP/2.0/UDP %s:5060;branch=z9hG4bK-inv-%06x-%d;rport\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:%s@" REALM ">;tag=caller1\r\nTo: <sip:2000@" REALM ">\r\n"
           "Call-ID: %s\r\nCSeq: %d CANCEL\r\nContent-Length: 0\r\n\r\n",
           ua_ips[who], cid_hash(callid), cseq, ua_names[who], callid, cseq);
  send_raw(w, who, req);
}

/* The phone's ACK for a non-2xx final response to its INVITE (§17.1.1.3:
 * same branch, the response's To tag). */
static void send_ack_non2xx(struct world *w, int who, const char *callid, int cseq, const char *to_tag) {
  char req[1500];
  snprintf(req, sizeof req,
           "ACK sip:2000@" REALM " SIP/2.0\r\nVia: SIP/2.0/UDP %s:5060;branch=z9hG4bK-inv-%06x-%d;rport\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:%s@" REALM ">;tag=caller1\r\nTo: <sip:2000@" REALM ">;tag=%s\r\n"
           "Call-ID: %s\r\nCSeq: %d ACK\r\nContent-Length: 0\r\n\r\n",
           ua_ips[who], cid_hash(callid), cseq, ua_names[who], to_tag, callid, cseq);
  send_raw(w, who, req);
}

/* The branch parameter of the first Via of a raw message, copied. */
static void top_branch(const char *msg, char *out, size_t n) {
  struct kz_sip_msg *m = NULL;
  out[0] = 0;
  ck_assert_int_eq(kz_sip_msg_parse(&m, msg, strlen(msg), 0, NULL), 0);
  ck_assert_uint_ge(m->nvias, 1);
  snprintf(out, n, "%.*s", (int)m->vias[0].branch.len, m->vias[0].branch.p);
  kz_deref(m);
}

/* Phone INVITE -> proxy -> fs1 rings -> phone CANCELs -> fs1 ends the
 * INVITE with 487 its own way (ucfg[FS1].on_cancel / delay_487_ns).
 * Checks what RFC 3261 §16.7/§16.10 require of the proxy: 200 to the
 * CANCEL, a CANCEL downstream, the 487 ACKed hop by hop towards fs1 and
 * relayed to the phone on its server transaction, with the phone's own
 * Via and the tags of the dialog it tried, and nothing more after the
 * phone's ACK. */
static void check_cancel_487(struct world *w, const char *callid, uint64_t wait_ns) {
  char inv[2000];
  build_invite(ALICE, "sip:2000@" REALM, callid, 1, inv, sizeof inv);
  send_raw(w, ALICE, inv);
  run(w, 50 * MS);
  ck_assert_ptr_nonnull(find_msg(w, ALICE, 0, "SIP/2.0 180"));
  const char *fi = find_msg(w, FS1, 0, "INVITE ");
  ck_assert_ptr_nonnull(fi);
  char inv_branch[64];
  top_branch(fi, inv_branch, sizeof inv_branch);
  ck_assert_ptr_nonnull(strstr(inv_branch, "z9hG4bKkzp"));

  int mark = w->logs[ALICE].n;
  send_cancel(w, ALICE, callid, 1);
  run(w, wait_ns);
  const char *c = find_msg(w, ALICE, mark, "SIP/2.0 200");
  ck_assert_ptr_nonnull(c);
  ck_assert_ptr_nonnull(strstr(c, "CSeq: 1 CANCEL"));
  /* The CANCEL went down on the INVITE's branch (§9.1). */
  const char *fc = find_msg(w, FS1, 0, "CANCEL sip:2000@" REALM);
  ck_assert_ptr_nonnull(fc);
  char can_branch[64];
  top_branch(fc, can_branch, sizeof can_branch);
  ck_assert_str_eq(can_branch, inv_branch);

  /* The 487 reached the phone: its own Via only, right branch, the
   * From tag it sent, the To tag fs1 gave. */
  ck_assert_int_eq(count_msgs(w, ALICE, mark, "SIP/2.0 487"), 1);
  const char *t = find_msg(w, ALICE, mark, "SIP/2.0 487 Request Terminated");
  ck_assert_ptr_nonnull(t);
  ck_assert_ptr_nonnull(strstr(t, "CSeq: 1 INVITE"));
  char via[300], want[128];
  ck_assert(hdr_value(t, "Via", via, sizeof via));
  snprintf(want, sizeof want, "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-inv-%06x-1;", cid_hash(callid));
  ck_assert_msg(!strncmp(via, want, strlen(want)), "Via of the 487: %s", via);
  ck_assert_ptr_null(strstr(t, "z9hG4bKkzp")); /* our Via is gone */
  ck_assert_ptr_nonnull(strstr(t, "From: <sip:alice@" REALM ">;tag=caller1\r\n"));
  ck_assert_ptr_nonnull(strstr(t, ";tag=uatag1\r\n"));
  char cid[128];
  ck_assert(hdr_value(t, "Call-ID", cid, sizeof cid));
  ck_assert_str_eq(cid, callid);

  /* The proxy ACKed the 487 itself, on the INVITE's branch (§17.1.1.3). */
  ck_assert_int_eq(count_msgs(w, FS1, 0, "ACK "), 1);
  const char *ack = find_msg(w, FS1, 0, "ACK sip:2000@" REALM);
  ck_assert_ptr_nonnull(ack);
  ck_assert_ptr_nonnull(strstr(ack, "CSeq: 1 ACK"));
  ck_assert_ptr_nonnull(strstr(ack, ";tag=uatag1\r\n"));
  char ack_branch[64];
  top_branch(ack, ack_branch, sizeof ack_branch);
  ck_assert_str_eq(ack_branch, inv_branch);

  /* The phone's ACK completes the server transaction: absorbed (not
   * sent to fs1 again), and no 487 retransmission after it. */
  send_ack_non2xx(w, ALICE, callid, 1, "uatag1");
  run(w, 100 * MS);
  int n487 = count_msgs(w, ALICE, mark, "SIP/2.0 487");
  run(w, 40 * SEC);
  ck_assert_int_eq(count_msgs(w, ALICE, mark, "SIP/2.0 487"), n487);
  ck_assert_int_eq(count_msgs(w, FS1, 0, "ACK "), 1);
  ck_assert_int_eq(count_msgs(w, FS1, 0, "CANCEL "), 1);
}

START_TEST(test_cancel) {
  struct world *w = world_new(1);
  w->ucfg[FS1].invite = INV_RING;
  world_start(w);
  check_cancel_487(w, "call-e@test", 50 * MS);
  world_free(w);
}
END_TEST

/* The media server answers 487 with the CANCEL's Via (SIPp's
 * [last_Via:]): the scenario library's cancel case. */
START_TEST(test_cancel_487_from_cancel_via) {
  struct world *w = world_new(1);
  w->ucfg[FS1].invite = INV_RING;
  w->ucfg[FS1].on_cancel = CAN_487_SIPP;
  world_start(w);
  check_cancel_487(w, "call-e2@test", 50 * MS);
  world_free(w);
}
END_TEST

/* The same with the 487 sent 50 ms after the CANCEL's 200. */
START_TEST(test_cancel_487_late) {
  struct world *w = world_new(1);
  w->ucfg[FS1].invite = INV_RING;
  w->ucfg[FS1].on_cancel = CAN_487_SIPP;
  w->ucfg[FS1].delay_487_ns = 50 * MS;
  world_start(w);
  check_cancel_487(w, "call-e3@test", 150 * MS);
  world_free(w);
}
END_TEST

/* An RFC-correct media server, 487 also 50 ms late. */
START_TEST(test_cancel_487_late_rfc) {
  struct world *w = world_new(1);
  w->ucfg[FS1].invite = INV_RING;
  w->ucfg[FS1].delay_487_ns = 50 * MS;
  world_start(w);
  check_cancel_487(w, "call-e4@test", 150 * MS);
  world_free(w);
}
END_TEST

/* A 487 that matches the proxy's client transaction (§17.1.3: branch
 * and method) but cannot be relayed as it is (its CSeq number is not the
 * phone's): the phone still gets a 487 for its own INVITE, answered by
 * the proxy, instead of waiting for its timeout. */
START_TEST(test_cancel_487_unrelayable) {
  struct world *w = world_new(1);
  w->ucfg[FS1].invite = INV_RING;
  w->ucfg[FS1].on_cancel = CAN_487_BAD_CSEQ;
  world_start(w);
  char inv[2000];
  build_invite(ALICE, "sip:2000@" REALM, "call-e7@test", 1, inv, sizeof inv);
  send_raw(w, ALICE, inv);
  run(w, 50 * MS);
  int mark = w->logs[ALICE].n;
  send_cancel(w, ALICE, "call-e7@test", 1);
  run(w, 50 * MS);
  ck_assert_int_eq(count_msgs(w, FS1, 0, "ACK "), 1); /* fs1's 487 was ACKed */
  ck_assert_int_eq(count_msgs(w, ALICE, mark, "SIP/2.0 487"), 1);
  const char *t = find_msg(w, ALICE, mark, "SIP/2.0 487 Request Terminated");
  ck_assert_ptr_nonnull(t);
  ck_assert_ptr_nonnull(strstr(t, "CSeq: 1 INVITE"));
  ck_assert_ptr_null(strstr(t, "CSeq: 2"));
  char via[300], want[128];
  ck_assert(hdr_value(t, "Via", via, sizeof via));
  snprintf(want, sizeof want, "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-inv-%06x-1", cid_hash("call-e7@test"));
  ck_assert_msg(!strncmp(via, want, strlen(want)), "Via of the 487: %s", via);
  ck_assert_ptr_nonnull(strstr(t, "From: <sip:alice@" REALM ">;tag=caller1\r\n"));
  world_free(w);
}
END_TEST

/* The media server answered 200 OK just before the relayed CANCEL came
 * in (they cross): the 200 still reaches the phone, no 487 anywhere. */
START_TEST(test_cancel_crosses_200) {
  struct world *w = world_new(1);
  w->ucfg[FS1].invite = INV_RING;
  w->ucfg[FS1].on_cancel = CAN_TOO_LATE;
  world_start(w);
  char inv[2000];
  build_invite(ALICE, "sip:2000@" REALM, "call-e5@test", 1, inv, sizeof inv);
  send_raw(w, ALICE, inv);
  run(w, 50 * MS);
  ck_assert_ptr_nonnull(find_msg(w, ALICE, 0, "SIP/2.0 180"));
  int mark = w->logs[ALICE].n;
  send_cancel(w, ALICE, "call-e5@test", 1);
  run(w, 100 * MS);
  ck_assert_ptr_nonnull(find_msg(w, FS1, 0, "CANCEL "));
  ck_assert_int_eq(count_msgs(w, ALICE, mark, "SIP/2.0 200"), 2); /* CANCEL's and INVITE's */
  bool ok_invite = false, ok_cancel = false;
  for (int i = mark; i < w->logs[ALICE].n; i++) {
    const char *m = w->logs[ALICE].msg[i];
    if (strncmp(m, "SIP/2.0 200", 11) != 0) continue;
    if (strstr(m, "CSeq: 1 INVITE")) {
      ok_invite = true;
      ck_assert_ptr_nonnull(strstr(m, ";tag=uatag1\r\n"));
      ck_assert_ptr_nonnull(strstr(m, "Record-Route: <sip:" PROXY_IP ":5060;lr>"));
      ck_assert_ptr_null(strstr(m, "z9hG4bKkzp"));
    }
    if (strstr(m, "CSeq: 1 CANCEL")) ok_cancel = true;
  }
  ck_assert(ok_invite);
  ck_assert(ok_cancel);
  ck_assert_int_eq(count_msgs(w, ALICE, 0, "SIP/2.0 487"), 0);
  ck_assert_int_eq(count_msgs(w, FS1, 0, "SIP/2.0 487"), 0);
  /* A 2xx is ACKed end to end, never by the proxy. */
  ck_assert_int_eq(count_msgs(w, FS1, 0, "ACK "), 0);
  run(w, 40 * SEC);
  ck_assert_int_eq(count_msgs(w, ALICE, 0, "SIP/2.0 487"), 0);
  world_free(w);
}
END_TEST

/* The phone CANCELs after the 200 OK reached it: the INVITE transaction
 * is over, nothing goes to the media server, no 487. */
START_TEST(test_cancel_after_200) {
  struct world *w = world_new(1);
  world_start(w);
  char inv[2000];
  build_invite(ALICE, "sip:2000@" REALM, "call-e6@test", 1, inv, sizeof inv);
  send_raw(w, ALICE, inv);
  run(w, 50 * MS);
  ck_assert_ptr_nonnull(find_msg(w, ALICE, 0, "SIP/2.0 200"));
  int mark = w->logs[ALICE].n;
  send_cancel(w, ALICE, "call-e6@test", 1);
  run(w, 100 * MS);
  const char *r = find_msg(w, ALICE, mark, "SIP/2.0 ");
  ck_assert_ptr_nonnull(r);
  ck_assert_ptr_nonnull(strstr(r, "CSeq: 1 CANCEL"));
  ck_assert_int_eq(count_msgs(w, FS1, 0, "CANCEL "), 0);
  ck_assert_int_eq(count_msgs(w, ALICE, 0, "SIP/2.0 487"), 0);
  world_free(w);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Pipeline checks                                                     */

START_TEST(test_max_forwards_zero) {
  struct world *w = world_new(1);
  world_start(w);
  char inv[2000];
  build_invite(ALICE, "sip:2000@" REALM, "call-f@test", 1, inv, sizeof inv);
  char *mf = strstr(inv, "Max-Forwards: 70");
  memcpy(mf, "Max-Forwards: 00", 16);
  send_raw(w, ALICE, inv);
  run(w, 50 * MS);
  ck_assert_ptr_nonnull(find_msg(w, ALICE, 0, "SIP/2.0 483 Too Many Hops"));
  ck_assert_int_eq(count_msgs(w, FS1, 0, "INVITE "), 0);
  world_free(w);
}
END_TEST

START_TEST(test_malformed_400) {
  struct world *w = world_new(1);
  world_start(w);
  send_raw(w, ALICE,
           "OPTIONS sip:" REALM " SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-m1\r\n"
           "From: <sip:alice@" REALM ">;tag=1\r\nTo: <sip:" REALM ">\r\nCSeq: 1 OPTIONS\r\n"
           "Content-Length: 0\r\n\r\n");
  run(w, 50 * MS);
  const char *r = find_msg(w, ALICE, 0, "SIP/2.0 400 Missing Call-ID");
  ck_assert_ptr_nonnull(r);
  ck_assert_ptr_nonnull(strstr(r, "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-m1"));
  ck_assert_ptr_nonnull(strstr(r, "CSeq: 1 OPTIONS"));
  /* A malformed ACK and a malformed response get nothing. */
  int mark = w->logs[ALICE].n;
  send_raw(w, ALICE,
           "ACK sip:" REALM " SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-m2\r\n"
           "From: <sip:alice@" REALM ">;tag=1\r\nTo: <sip:" REALM ">\r\nCSeq: 1 ACK\r\n\r\n");
  send_raw(w, ALICE, "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx\r\n\r\n");
  run(w, 50 * MS);
  ck_assert_int_eq(w->logs[ALICE].n, mark);
  ck_assert_uint_ge(stats(w).malformed, 3);
  /* Unsupported scheme and Proxy-Require. */
  send_raw(w, ALICE,
           "OPTIONS mailto:a@" REALM " SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-m3\r\n"
           "From: <sip:alice@" REALM ">;tag=1\r\nTo: <sip:b@" REALM ">\r\nCall-ID: m3\r\nCSeq: 1 OPTIONS\r\n"
           "Content-Length: 0\r\n\r\n");
  send_raw(w, ALICE,
           "OPTIONS sip:b@" REALM " SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-m4\r\n"
           "From: <sip:alice@" REALM ">;tag=1\r\nTo: <sip:b@" REALM ">\r\nCall-ID: m4\r\nCSeq: 1 OPTIONS\r\n"
           "Proxy-Require: foo\r\nContent-Length: 0\r\n\r\n");
  run(w, 50 * MS);
  ck_assert_ptr_nonnull(find_msg(w, ALICE, mark, "SIP/2.0 416"));
  const char *u = find_msg(w, ALICE, mark, "SIP/2.0 420");
  ck_assert_ptr_nonnull(u);
  ck_assert_ptr_nonnull(strstr(u, "Unsupported: foo"));
  world_free(w);
}
END_TEST

START_TEST(test_loop_detected) {
  /* The proxy is its own media server: the forwarded INVITE comes back
   * unchanged and must be refused with 482. */
  struct world *w = world_new(0);
  snprintf(w->cfg.media_servers[0], sizeof w->cfg.media_servers[0], "sip:" PROXY_IP ":5060");
  w->cfg.n_media_servers = 1;
  w->cfg.traffic_filter = false;
  world_start(w);
  char inv[2000];
  build_invite(ALICE, "sip:2000@" REALM, "call-loop@test", 1, inv, sizeof inv);
  send_raw(w, ALICE, inv);
  run(w, 100 * MS);
  ck_assert_ptr_nonnull(find_msg(w, ALICE, 0, "SIP/2.0 482 Loop Detected"));
  world_free(w);
}
END_TEST

START_TEST(test_traffic_filter) {
  struct world *w = world_new(1);
  world_start(w);
  char inv[2000];
  build_invite(ATTACKER, "sip:100@" PROXY_IP, "scan-1", 1, inv, sizeof inv);
  send_raw(w, ATTACKER, inv);
  run(w, 50 * MS);
  ck_assert_int_eq(w->logs[ATTACKER].n, 0);
  ck_assert_int_eq(count_msgs(w, FS1, 0, "INVITE "), 0);
  ck_assert_uint_eq(stats(w).filtered, 1);
  world_free(w);
}
END_TEST

START_TEST(test_tcp_options) {
  struct world *w = world_new(1);
  w->ucfg[BOB].tcp = true;
  world_start(w);
  struct ua *ua = kz_sim_proc_instance(w->ua[BOB]);
  const char *msg = "OPTIONS sip:" REALM " SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.20:5060;branch=z9hG4bK-t1\r\n"
                    "From: <sip:bob@" REALM ">;tag=1\r\nTo: <sip:" REALM ">\r\nCall-ID: t1\r\n"
                    "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
  /* Split in two writes: the framer must reassemble. */
  kz_stream_write(ua->s, msg, 40);
  run(w, 10 * MS);
  kz_stream_write(ua->s, msg + 40, strlen(msg) - 40);
  run(w, 50 * MS);
  ck_assert_ptr_nonnull(find_msg(w, BOB, 0, "SIP/2.0 200"));
  world_free(w);
}
END_TEST

/* ------------------------------------------------------------------ */
/* NAT                                                                 */

START_TEST(test_nat_keepalive) {
  struct world *w = world_new(1);
  world_start(w);
  /* The phone advertises its private address; packets come from the
   * public one. */
  ck_assert_int_eq(do_register(w, NATPH, "nat", "natpw", "<sip:nat@192.168.1.20:5062>", "Expires: 3600\r\n",
                               "reg-n", NULL, 0),
                   200);
  ck_assert_ptr_nonnull(strstr(w->br.last_reg_success, "alias=198.51.100.7~5060~1"));
  run(w, 31 * SEC);
  ck_assert_ptr_nonnull(find_msg(w, NATPH, 0, "OPTIONS sip:nat@192.168.1.20:5062"));
  ck_assert_uint_eq(kz_proxy_binding_count(proxy_of(w), "nat@" REALM), 1);
  /* A call from the media server reaches the public address. */
  char inv[2000];
  build_invite(FS1, "sip:nat@" REALM, "call-n@test", 1, inv, sizeof inv);
  send_raw(w, FS1, inv);
  run(w, 100 * MS);
  ck_assert_ptr_nonnull(find_msg(w, NATPH, 0, "INVITE sip:nat@192.168.1.20:5062"));
  /* The phone goes silent: dropped after 3 unanswered pings. */
  w->ucfg[NATPH].options_silent = true;
  run(w, 4 * 30 * SEC);
  ck_assert_uint_eq(kz_proxy_binding_count(proxy_of(w), "nat@" REALM), 0);
  ck_assert_uint_eq(stats(w).nat_bindings_dropped, 1);
  world_free(w);
}
END_TEST

/* Sends, from UA `who`, an INVITE for sip:<user>@REALM whose Via
 * sent-by is `sent_by` and whose Contact is `contact` (From
 * <sip:<from>@REALM>;tag=t-<user>, Call-ID call-<user>@test), and puts
 * in c the Contact the first media server received. */
static void invite_contact_seen(struct world *w, int who, const char *from, const char *user, const char *sent_by,
                                const char *contact, char *c, size_t n) {
  char inv[2000], ruri[96];
  snprintf(ruri, sizeof ruri, "INVITE sip:%s@" REALM, user);
  snprintf(inv, sizeof inv,
           "%s SIP/2.0\r\n"
           "Via: SIP/2.0/UDP %s;branch=z9hG4bK-contact-%s;rport\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:%s@" REALM ">;tag=t-%s\r\nTo: <sip:%s@" REALM ">\r\n"
           "Call-ID: call-%s@test\r\nCSeq: 1 INVITE\r\nContact: %s\r\n"
           "Content-Length: 0\r\n\r\n",
           ruri, sent_by, user, from, user, user, user, contact);
  send_raw(w, who, inv);
  run(w, 50 * MS);
  const char *fi = find_msg(w, FS1, 0, ruri);
  ck_assert_ptr_nonnull(fi);
  ck_assert(hdr_value(fi, "Contact", c, n));
}

/* A NATed phone's INVITE reaches the media server with ;alias= on its
 * Contact (set_contact_alias); the media server's BYE to that Contact
 * is sent to the alias address with the parameter removed
 * (handle_ruri_alias).  A phone whose Contact is its source is left
 * alone, and other Contact shapes keep their display name and header
 * parameters. */
START_TEST(test_nat_invite_contact_alias) {
  struct world *w = world_new(1);
  world_start(w);
  char inv[2000], c[300];
  invite_contact_seen(w, NATPH, "nat", "2000", "192.168.1.20:5062", "<sip:nat@192.168.1.20:5062>", c, sizeof c);
  ck_assert_str_eq(c, "<sip:nat@192.168.1.20:5062;alias=198.51.100.7~5060~1>");
  /* The answer went back to the public address (received/rport). */
  ck_assert_ptr_nonnull(find_msg(w, NATPH, 0, "SIP/2.0 200"));
  /* The media server hangs up through the proxy's Record-Route. */
  char bye[1500];
  snprintf(bye, sizeof bye,
           "BYE sip:nat@192.168.1.20:5062;alias=198.51.100.7~5060~1 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-fsbye1\r\nRoute: <sip:" PROXY_IP ":5060;lr>\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:2000@" REALM ">;tag=uatag1\r\nTo: <sip:nat@" REALM ">;tag=t-2000\r\n"
           "Call-ID: call-2000@test\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n");
  int mark = w->logs[FS1].n;
  send_raw(w, FS1, bye);
  run(w, 50 * MS);
  const char *b = find_msg(w, NATPH, 0, "BYE ");
  ck_assert_ptr_nonnull(b);
  ck_assert_int_eq(strncmp(b, "BYE sip:nat@192.168.1.20:5062 SIP/2.0\r\n", 39), 0);
  ck_assert_ptr_null(strstr(b, "alias="));
  ck_assert_ptr_null(strstr(b, "Route:"));
  ck_assert_ptr_nonnull(find_msg(w, FS1, mark, "SIP/2.0 200"));

  /* Not NATed: the Contact is the packet source. */
  build_invite(ALICE, "sip:2001@" REALM, "call-nonat@test", 1, inv, sizeof inv);
  send_raw(w, ALICE, inv);
  run(w, 50 * MS);
  const char *fi = find_msg(w, FS1, 0, "INVITE sip:2001@" REALM);
  ck_assert_ptr_nonnull(fi);
  ck_assert(hdr_value(fi, "Contact", c, sizeof c));
  ck_assert_str_eq(c, "<sip:alice@192.0.2.10:5060>");
  /* The same source written with leading zeros (RFC 3261's IPv4address
   * allows them; decimal, as Kamailio reads them): not NATed either. */
  invite_contact_seen(w, ALICE, "alice", "2002", "192.000.002.010:5060", "<sip:alice@192.000.002.010:5060>", c,
                      sizeof c);
  ck_assert_str_eq(c, "<sip:alice@192.000.002.010:5060>");

  /* A name-addr with URI parameters and header parameters, and an
   * addr-spec (which needs <> once its URI has a parameter). */
  static const char *const in[] = {
      "\"Nat Phone\" <sip:nat@192.168.1.20:5062;transport=udp>;+sip.instance=\"<urn:uuid:1>\"",
      "sip:nat@192.168.1.20:5062;expires=3600",
  };
  static const char *const want[] = {
      "\"Nat Phone\" <sip:nat@192.168.1.20:5062;transport=udp;alias=198.51.100.7~5060~1>"
      ";+sip.instance=\"<urn:uuid:1>\"",
      "<sip:nat@192.168.1.20:5062;alias=198.51.100.7~5060~1>;expires=3600",
  };
  for (int i = 0; i < 2; i++) {
    char user[8];
    snprintf(user, sizeof user, "30%d", i);
    invite_contact_seen(w, NATPH, "nat", user, "192.168.1.20:5062", in[i], c, sizeof c);
    ck_assert_str_eq(c, want[i]);
  }
  world_free(w);
}
END_TEST

/* Over TCP the alias names the connection's source port and proto 2;
 * the answer comes back on the same connection. */
START_TEST(test_nat_tcp_contact_alias) {
  struct world *w = world_new(1);
  w->ucfg[BOB].tcp = true;
  world_start(w);
  struct ua *bob = kz_sim_proc_instance(w->ua[BOB]);
  const char *inv = "INVITE sip:2000@" REALM " SIP/2.0\r\n"
                    "Via: SIP/2.0/TCP 192.168.7.7:5060;branch=z9hG4bK-tcpnat;rport\r\n"
                    "Max-Forwards: 70\r\nFrom: <sip:bob@" REALM ">;tag=t1\r\nTo: <sip:2000@" REALM ">\r\n"
                    "Call-ID: call-tcpnat@test\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@192.168.7.7:5060;transport=tcp>\r\n"
                    "Content-Length: 0\r\n\r\n";
  kz_stream_write(bob->s, inv, strlen(inv));
  run(w, 50 * MS);
  const char *fi = find_msg(w, FS1, 0, "INVITE sip:2000@" REALM);
  ck_assert_ptr_nonnull(fi);
  char c[300], want[300];
  ck_assert(hdr_value(fi, "Contact", c, sizeof c));
  snprintf(want, sizeof want, "<sip:bob@192.168.7.7:5060;transport=tcp;alias=192.0.2.20~%u~2>", bob->s->local.port);
  ck_assert_str_eq(c, want);
  ck_assert_ptr_nonnull(find_msg(w, BOB, 0, "SIP/2.0 200"));
  world_free(w);
}
END_TEST

/* A NATed device answers a call from a media server: its 200 reaches the
 * media server with ;alias= on the Contact, and the media server's BYE
 * to that Contact reaches the device at its public address. */
START_TEST(test_nat_reply_contact_alias) {
  struct world *w = world_new(1);
  w->ucfg[NATPH].contact_hp = "192.168.1.20:5062";
  world_start(w);
  ck_assert_int_eq(do_register(w, NATPH, "nat", "natpw", "<sip:nat@192.168.1.20:5062>", "Expires: 3600\r\n",
                               "reg-nr", NULL, 0),
                   200);
  char inv[2000];
  build_invite(FS1, "sip:nat@" REALM, "call-nr@test", 1, inv, sizeof inv);
  send_raw(w, FS1, inv);
  run(w, 100 * MS);
  ck_assert_ptr_nonnull(find_msg(w, NATPH, 0, "INVITE sip:nat@192.168.1.20:5062 SIP/2.0"));
  const char *ok = find_msg(w, FS1, 0, "SIP/2.0 200");
  ck_assert_ptr_nonnull(ok);
  char c[300];
  ck_assert(hdr_value(ok, "Contact", c, sizeof c));
  ck_assert_str_eq(c, "<sip:ua@192.168.1.20:5062;alias=198.51.100.7~5060~1>");
  /* The 180 has no Contact: nothing to alias, relayed as it came. */
  ck_assert_ptr_nonnull(find_msg(w, FS1, 0, "SIP/2.0 180"));
  char bye[1500];
  snprintf(bye, sizeof bye,
           "BYE sip:ua@192.168.1.20:5062;alias=198.51.100.7~5060~1 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-fsbye2\r\nRoute: <sip:" PROXY_IP ":5060;lr>\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:fs1@" REALM ">;tag=caller1\r\nTo: <sip:nat@" REALM ">;tag=uatag1\r\n"
           "Call-ID: call-nr@test\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n");
  int mark = w->logs[FS1].n;
  send_raw(w, FS1, bye);
  run(w, 50 * MS);
  const char *b = find_msg(w, NATPH, 0, "BYE ");
  ck_assert_ptr_nonnull(b);
  ck_assert_int_eq(strncmp(b, "BYE sip:ua@192.168.1.20:5062 SIP/2.0\r\n", 38), 0);
  ck_assert_ptr_nonnull(find_msg(w, FS1, mark, "SIP/2.0 200"));
  world_free(w);
}
END_TEST

/* RFC 3327: a binding registered through an edge proxy (Path) is
 * reached through it: requests to the contact carry the Path as Route
 * and go to the first Path hop; the 200 echoes the Path to a UA that
 * supports it. */
START_TEST(test_path_route_set) {
  struct world *w = world_new(1);
  world_start(w);
  /* fs2 (not a media server in this world) plays the edge proxy. */
  ck_assert_int_eq(do_register(w, FS2, "bob", "bobpw", "<sip:bob@192.0.2.20:5060>",
                               "Expires: 600\r\nPath: <sip:10.0.0.6:5060;lr>\r\nSupported: path\r\n", "reg-p",
                               NULL, 0),
                   200);
  const char *ok = find_msg(w, FS2, 0, "SIP/2.0 200");
  ck_assert_ptr_nonnull(ok);
  ck_assert_ptr_nonnull(strstr(ok, "\r\nPath: <sip:10.0.0.6:5060;lr>\r\n"));
  char inv[2000];
  build_invite(FS1, "sip:bob@" REALM, "call-path@test", 1, inv, sizeof inv);
  send_raw(w, FS1, inv);
  run(w, 100 * MS);
  const char *pi = find_msg(w, FS2, 0, "INVITE sip:bob@192.0.2.20:5060 SIP/2.0");
  ck_assert_ptr_nonnull(pi);
  ck_assert_ptr_nonnull(strstr(pi, "\r\nRoute: <sip:10.0.0.6:5060;lr>\r\n"));
  ck_assert_ptr_nonnull(strstr(pi, "Record-Route: <sip:" PROXY_IP ":5060;lr>"));
  ck_assert_int_eq(count_msgs(w, BOB, 0, "INVITE "), 0);
  ck_assert_ptr_nonnull(find_msg(w, FS1, 0, "SIP/2.0 200"));

  /* Without Supported: path the Path is stored but not echoed. */
  ck_assert_int_eq(do_register(w, FS2, "alice", "alicepw", "<sip:alice@192.0.2.10:5060>",
                               "Expires: 600\r\nPath: <sip:10.0.0.6:5060;lr>\r\n", "reg-p2", NULL, 0),
                   200);
  ok = find_msg(w, FS2, 0, "SIP/2.0 200");
  ck_assert_ptr_nonnull(ok);
  ck_assert_ptr_null(strstr(ok, "Path:"));
  world_free(w);
}
END_TEST

/* ------------------------------------------------------------------ */
/* X-AUTH headers (Kazoo 4.3: INVITEs are not challenged by the proxy) */

START_TEST(test_xauth_registered_device) {
  struct world *w = world_new(1);
  world_start(w);
  ck_assert_int_eq(do_register(w, ALICE, "alice", "alicepw", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n",
                               "reg-x", NULL, 0),
                   200);
  char inv[2000];
  build_invite(ALICE, "sip:2000@" REALM, "call-x1@test", 1, inv, sizeof inv);
  send_raw(w, ALICE, inv);
  run(w, 50 * MS);
  ck_assert_int_eq(count_msgs(w, ALICE, 0, "SIP/2.0 407"), 0); /* no challenge */
  const char *fi = find_msg(w, FS1, 0, "INVITE sip:2000@" REALM);
  ck_assert_ptr_nonnull(fi);
  char v[200];
  ck_assert(hdr_value(fi, "X-AUTH-Token", v, sizeof v));
  ck_assert_str_eq(v, "dev-alice@acct0001");
  ck_assert(hdr_value(fi, "X-AUTH-IP", v, sizeof v));
  ck_assert_str_eq(v, "192.0.2.10");
  ck_assert(hdr_value(fi, "X-AUTH-PORT", v, sizeof v));
  ck_assert_str_eq(v, "5060");
  /* A media server's own X-AUTH-* headers pass untouched to the device. */
  build_invite_ex(FS1, "fs1", "sip:alice@" REALM, "call-x2@test", 1, "X-AUTH-Token: from-fs@acct0001\r\n", inv,
                  sizeof inv);
  send_raw(w, FS1, inv);
  run(w, 100 * MS);
  const char *di = find_msg(w, ALICE, 0, "INVITE sip:alice@192.0.2.10:5060 SIP/2.0");
  ck_assert_ptr_nonnull(di);
  ck_assert(hdr_value(di, "X-AUTH-Token", v, sizeof v));
  ck_assert_str_eq(v, "from-fs@acct0001");
  ck_assert_ptr_null(strstr(di, "X-AUTH-IP"));
  world_free(w);
}
END_TEST

START_TEST(test_xauth_unregistered_source) {
  struct world *w = world_new(1);
  world_start(w);
  /* Bob never registered. */
  char inv[2000];
  build_invite(BOB, "sip:2000@" REALM, "call-x3@test", 1, inv, sizeof inv);
  send_raw(w, BOB, inv);
  run(w, 50 * MS);
  const char *fi = find_msg(w, FS1, 0, "INVITE sip:2000@" REALM);
  ck_assert_ptr_nonnull(fi);
  char v[200];
  ck_assert(!hdr_value(fi, "X-AUTH-Token", v, sizeof v));
  ck_assert(hdr_value(fi, "X-AUTH-IP", v, sizeof v));
  ck_assert_str_eq(v, "192.0.2.20");
  /* Alice is registered, but from 192.0.2.10: bob claiming to be her
   * from his own address gets no token. */
  ck_assert_int_eq(do_register(w, ALICE, "alice", "alicepw", "<sip:alice@192.0.2.10:5060>", "Expires: 600\r\n",
                               "reg-x3", NULL, 0),
                   200);
  build_invite_ex(BOB, "alice", "sip:2001@" REALM, "call-x4@test", 1, "", inv, sizeof inv);
  send_raw(w, BOB, inv);
  run(w, 50 * MS);
  fi = find_msg(w, FS1, 0, "INVITE sip:2001@" REALM);
  ck_assert_ptr_nonnull(fi);
  ck_assert(!hdr_value(fi, "X-AUTH-Token", v, sizeof v));
  world_free(w);
}
END_TEST

START_TEST(test_xauth_forged_stripped) {
  struct world *w = world_new(1);
  world_start(w);
  char inv[2000];
  build_invite_ex(BOB, "bob", "sip:2000@" REALM, "call-x5@test", 1,
                  "X-AUTH-Token: forged@acct0001\r\nx-auth-ip: 6.6.6.6\r\nX-Auth-Port: 1\r\n", inv, sizeof inv);
  send_raw(w, BOB, inv);
  run(w, 50 * MS);
  const char *fi = find_msg(w, FS1, 0, "INVITE sip:2000@" REALM);
  ck_assert_ptr_nonnull(fi);
  ck_assert_ptr_null(strstr(fi, "forged"));
  ck_assert_ptr_null(strstr(fi, "6.6.6.6"));
  char v[200];
  ck_assert(hdr_value(fi, "X-AUTH-IP", v, sizeof v));
  ck_assert_str_eq(v, "192.0.2.20");
  ck_assert(hdr_value(fi, "X-AUTH-PORT", v, sizeof v));
  ck_assert_str_eq(v, "5060");
  /* In dialog too: the phone's BYE loses its forged header. */
  char bye[1500];
  snprintf(bye, sizeof bye,
           "BYE sip:ua@10.0.0.5:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK-xbye\r\n"
           "Route: <sip:" PROXY_IP ":5060;lr>\r\nMax-Forwards: 70\r\nFrom: <sip:bob@" REALM ">;tag=caller1\r\n"
           "To: <sip:2000@" REALM ">;tag=uatag1\r\nCall-ID: call-x5@test\r\nCSeq: 2 BYE\r\n"
           "X-AUTH-Token: forged@acct0001\r\nContent-Length: 0\r\n\r\n");
  send_raw(w, BOB, bye);
  run(w, 50 * MS);
  const char *b = find_msg(w, FS1, 0, "BYE sip:ua@10.0.0.5:5060");
  ck_assert_ptr_nonnull(b);
  ck_assert_ptr_null(strstr(b, "X-AUTH"));
  world_free(w);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Oversize messages on TCP (RFC 3261 §18.3, §21.5.14)                 */

START_TEST(test_tcp_message_too_large) {
  struct world *w = world_new(1);
  w->ucfg[BOB].tcp = true;
  w->ucfg[ALICE].tcp = true;
  w->ucfg[NATPH].tcp = true;
  world_start(w);
  /* A Content-Length over the 64 KiB limit. */
  struct ua *bob = kz_sim_proc_instance(w->ua[BOB]);
  const char *big = "INVITE sip:2000@" REALM " SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.20:5060;branch=z9hG4bK-big1\r\n"
                    "From: <sip:bob@" REALM ">;tag=b1\r\nTo: <sip:2000@" REALM ">\r\nCall-ID: big1\r\n"
                    "CSeq: 1 INVITE\r\nContent-Length: 100000\r\n\r\nv=0\r\n";
  kz_stream_write(bob->s, big, strlen(big));
  run(w, 50 * MS);
  const char *r = find_msg(w, BOB, 0, "SIP/2.0 513 Message Too Large\r\n");
  ck_assert_ptr_nonnull(r);
  ck_assert_ptr_nonnull(strstr(r, "Call-ID: big1\r\n"));
  ck_assert_ptr_nonnull(strstr(r, "CSeq: 1 INVITE\r\n"));
  ck_assert_ptr_nonnull(strstr(r, "branch=z9hG4bK-big1"));
  ck_assert_int_ne(bob->stream_status, 0); /* and the stream is closed */
  ck_assert_int_eq(count_msgs(w, FS1, 0, "INVITE "), 0);

  /* A header block that never ends within the limit. */
  struct ua *alice = kz_sim_proc_instance(w->ua[ALICE]);
  struct kz_buf hb;
  kz_buf_init(&hb);
  kz_buf_append_cstr(&hb, "OPTIONS sip:" REALM " SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK-big2\r\n"
                          "From: <sip:alice@" REALM ">;tag=a1\r\nTo: <sip:" REALM ">\r\nCall-ID: big2\r\n"
                          "CSeq: 7 OPTIONS\r\n");
  while (hb.len < 70 * 1024) kz_buf_append_cstr(&hb, "X-Padding: 0123456789abcdef0123456789abcdef\r\n");
  kz_stream_write(alice->s, hb.data, hb.len);
  kz_buf_free(&hb);
  run(w, 50 * MS);
  r = find_msg(w, ALICE, 0, "SIP/2.0 513 Message Too Large\r\n");
  ck_assert_ptr_nonnull(r);
  ck_assert_ptr_nonnull(strstr(r, "Call-ID: big2\r\n"));
  ck_assert_ptr_null(strstr(r, "X-Padding"));
  ck_assert_int_ne(alice->stream_status, 0);

  /* No Content-Length on a stream: 400 with the framer's reason. */
  struct ua *nat = kz_sim_proc_instance(w->ua[NATPH]);
  const char *nocl = "OPTIONS sip:" REALM " SIP/2.0\r\nVia: SIP/2.0/TCP 198.51.100.7:5060;branch=z9hG4bK-nocl\r\n"
                     "From: <sip:nat@" REALM ">;tag=n1\r\nTo: <sip:" REALM ">\r\nCall-ID: nocl\r\n"
                     "CSeq: 1 OPTIONS\r\n\r\n";
  kz_stream_write(nat->s, nocl, strlen(nocl));
  run(w, 50 * MS);
  r = find_msg(w, NATPH, 0, "SIP/2.0 400 Missing Content-Length");
  ck_assert_ptr_nonnull(r);
  ck_assert_ptr_nonnull(strstr(r, "Call-ID: nocl\r\n"));
  ck_assert_int_ne(nat->stream_status, 0);
  ck_assert_uint_eq(stats(w).malformed, 3);
  world_free(w);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Flood                                                               */

struct flood {
  struct world *w;
  int sent;
};

static void flood_tick(struct kz_sim *sim, void *arg) {
  struct flood *f = arg;
  char req[800];
  snprintf(req, sizeof req,
           "OPTIONS sip:100@" REALM " SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.66:5060;branch=z9hG4bK-f%d\r\n"
           "From: <sip:x@" REALM ">;tag=f\r\nTo: <sip:100@" REALM ">\r\nCall-ID: flood-%d\r\n"
           "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
           f->sent, f->sent);
  send_raw(f->w, ATTACKER, req);
  f->sent++;
  if (f->sent < 2000) kz_sim_at(sim, kz_sim_now(sim) + 5 * MS, flood_tick, f);
}

START_TEST(test_flood_ban_keeps_users_served) {
  struct world *w = world_new(1);
  world_start(w);
  /* The CPU model on: the proxy host does real work per datagram. */
  struct kz_sim_cost cost = KZ_SIM_COST_DEFAULT_INIT;
  kz_sim_set_cost(w->sim, NULL, &cost);
  struct flood f = {w, 0};
  kz_sim_at(w->sim, kz_sim_now(w->sim), flood_tick, &f);
  run(w, 3 * SEC);
  /* 200 requests/s from one source: banned within the first window. */
  ck_assert_uint_eq(stats(w).flood_bans, 1);
  int answered = count_msgs(w, ATTACKER, 0, "SIP/2.0 200");
  ck_assert_int_le(answered, 50);
  ck_assert_uint_ge(stats(w).flood_dropped, 400);
  /* Meanwhile a legitimate user registers fine, twice. */
  ck_assert_int_eq(do_register(w, BOB, "bob", "bobpw", "<sip:bob@192.0.2.20:5060>", "Expires: 600\r\n",
                               "reg-f", NULL, 0),
                   200);
  run(w, 2 * SEC);
  ck_assert_int_eq(do_register(w, BOB, "bob", "bobpw", "<sip:bob@192.0.2.20:5060>", "Expires: 600\r\n",
                               "reg-f", NULL, 0),
                   200);
  ck_assert_int_eq(count_msgs(w, ATTACKER, 0, "SIP/2.0 200"), answered); /* still banned */
  world_free(w);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

START_TEST(test_config_json) {
  struct kz_proxy_config c;
  kz_proxy_config_defaults(&c);
  ck_assert_uint_eq(c.min_expires_s, 300);
  ck_assert_uint_eq(c.max_expires_s, 3600);
  ck_assert_uint_eq(c.authn_timeout_ms, 2500);
  ck_assert_uint_eq(c.pike_density, 50);
  char err[160] = "";
  const char *ok = "{\"listen\":\"10.1.1.1:5080\",\"min_expires_s\":120,\"tcp\":false,"
                   "\"media_servers\":[\"sip:10.1.1.5:5060\",\"10.1.1.6\"],\"auth_fail_action\":\"drop\","
                   "\"trusted\":[\"10.9.9.9\"]}";
  ck_assert_int_eq(kz_proxy_config_parse(&c, ok, strlen(ok), err, sizeof err), 0);
  ck_assert_str_eq(c.listen, "10.1.1.1:5080");
  ck_assert_uint_eq(c.min_expires_s, 120);
  ck_assert(!c.tcp);
  ck_assert_uint_eq(c.n_media_servers, 2);
  ck_assert_str_eq(c.media_servers[1], "10.1.1.6");
  ck_assert_int_eq(c.auth_fail_action, KZ_PROXY_AUTH_DROP);
  ck_assert_uint_eq(c.n_trusted, 1);

  const char *bad1 = "{\"min_expires_s\":\"soon\"}";
  ck_assert_int_eq(kz_proxy_config_parse(&c, bad1, strlen(bad1), err, sizeof err), KZ_EPROTO);
  ck_assert_str_eq(err, "min_expires_s: expected a non-negative integer");
  const char *bad2 = "{\"bogus\":1}";
  ck_assert_int_eq(kz_proxy_config_parse(&c, bad2, strlen(bad2), err, sizeof err), KZ_EPROTO);
  ck_assert_str_eq(err, "bogus: unknown field");
  const char *bad3 = "{\"media_servers\":[\"nowhere\"]}";
  ck_assert_int_eq(kz_proxy_config_parse(&c, bad3, strlen(bad3), err, sizeof err), KZ_EPROTO);
  ck_assert_ptr_nonnull(strstr(err, "media_servers[0]"));
  const char *bad4 = "{\"listen\":";
  ck_assert_int_eq(kz_proxy_config_parse(&c, bad4, strlen(bad4), err, sizeof err), KZ_EPROTO);
  ck_assert_ptr_nonnull(strstr(err, "line 1"));
  const char *bad5 = "{\"min_expires_s\":4000}";
  kz_proxy_config_defaults(&c);
  ck_assert_int_eq(kz_proxy_config_parse(&c, bad5, strlen(bad5), err, sizeof err), KZ_EPROTO);
  ck_assert_ptr_nonnull(strstr(err, "max_expires_s"));
}
END_TEST

START_TEST(test_advertised_media_server) {
  struct world *w = world_new(0);
  world_start(w);
  char inv[2000];
  build_invite(ALICE, "sip:2000@" REALM, "call-adv@test", 1, inv, sizeof inv);
  send_raw(w, ALICE, inv);
  run(w, 50 * MS);
  ck_assert_ptr_nonnull(find_msg(w, ALICE, 0, "SIP/2.0 480 All servers busy"));
  fb_publish(&w->br, "nodes", "",
             "{\"Event-Category\":\"nodes\",\"Event-Name\":\"advertise\",\"App-Name\":\"ecallmgr\","
             "\"App-Version\":\"4.3\",\"Msg-ID\":\"n1\",\"Node\":\"ecallmgr@fs2\",\"Expires\":15000,"
             "\"Media-Servers\":{\"freeswitch@fs2\":{\"Instance-UUID\":\"u1\",\"Interfaces\":"
             "{\"sipinterface_1\":{\"URL\":\"sip:mod_sofia@10.0.0.6:5060\"}}}}}");
  run(w, 20 * MS);
  ck_assert(kz_proxy_server_is_up(proxy_of(w), "10.0.0.6:5060"));
  build_invite(ALICE, "sip:2000@" REALM, "call-adv2@test", 1, inv, sizeof inv);
  send_raw(w, ALICE, inv);
  run(w, 50 * MS);
  ck_assert_int_eq(count_msgs(w, FS2, 0, "INVITE "), 1);
  /* No more heartbeats: gone after Expires + 45 s. */
  run(w, 70 * SEC);
  size_t up;
  ck_assert_uint_eq(kz_proxy_server_count(proxy_of(w), &up), 0);
  world_free(w);
}
END_TEST

int main(void) {
  Suite *s = suite_create("proxy");
  TCase *tc;
  tc = kz_tcase(s, "registrar", 60);
  tcase_add_test(tc, test_register_ok);
  tcase_add_test(tc, test_register_wrong_password);
  tcase_add_test(tc, test_register_unknown_user);
  tcase_add_test(tc, test_register_interval_too_brief);
  tcase_add_test(tc, test_register_clamped_and_unregister);
  tcase_add_test(tc, test_register_out_of_order_cseq);
  tcase_add_test(tc, test_reregister_from_cache);
  tcase_add_test(tc, test_register_retransmission);
  tcase_add_test(tc, test_register_late_answer);
  tcase_add_test(tc, test_authn_timeout_drops);
  tcase_add_test(tc, test_reg_query_and_flush);
  tcase_add_test(tc, test_auth_failure_ban);
  tc = kz_tcase(s, "calls", 60);
  tcase_add_test(tc, test_call_to_media_server);
  tcase_add_test(tc, test_call_from_media_to_device);
  tcase_add_test(tc, test_device_not_registered);
  tcase_add_test(tc, test_failover_on_503);
  tcase_add_test(tc, test_failover_limit);
  tcase_add_test(tc, test_failover_on_silence);
  tcase_add_test(tc, test_all_media_down_480);
  tcase_add_test(tc, test_407_sticky);
  tcase_add_test(tc, test_cancel);
  tcase_add_test(tc, test_cancel_487_from_cancel_via);
  tcase_add_test(tc, test_cancel_487_late);
  tcase_add_test(tc, test_cancel_487_late_rfc);
  tcase_add_test(tc, test_cancel_487_unrelayable);
  tcase_add_test(tc, test_cancel_crosses_200);
  tcase_add_test(tc, test_cancel_after_200);
  tcase_add_test(tc, test_advertised_media_server);
  tc = kz_tcase(s, "pipeline", 60);
  tcase_add_test(tc, test_max_forwards_zero);
  tcase_add_test(tc, test_malformed_400);
  tcase_add_test(tc, test_loop_detected);
  tcase_add_test(tc, test_traffic_filter);
  tcase_add_test(tc, test_tcp_options);
  tcase_add_test(tc, test_nat_keepalive);
  tcase_add_test(tc, test_nat_invite_contact_alias);
  tcase_add_test(tc, test_nat_tcp_contact_alias);
  tcase_add_test(tc, test_nat_reply_contact_alias);
  tcase_add_test(tc, test_path_route_set);
  tcase_add_test(tc, test_xauth_registered_device);
  tcase_add_test(tc, test_xauth_unregistered_source);
  tcase_add_test(tc, test_xauth_forged_stripped);
  tcase_add_test(tc, test_tcp_message_too_large);
  tcase_add_test(tc, test_flood_ban_keeps_users_served);
  tcase_add_test(tc, test_config_json);
  return kz_run_suite(s);
}
