/* fuzz_proxy_sim.c — libFuzzer target: a whole proxy role (transactions, registrar, dispatcher, anti-flood, NAT) in the simulator, fed fuzzed datagrams and streams from a phone and a media server; it must never crash, leak or stop running. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz_fuzz.h"

#include "fake_bus.h"
#include "kz/env.h"
#include "kz/error.h"
#include "kz/proxy.h"
#include "kz/sim.h"

#define MS UINT64_C(1000000)
#define PROXY_IP 0x0a000001u /* 10.0.0.1 */
#define PHONE_IP 0x0a000101u /* 10.0.1.1: an untrusted device */
#define MEDIA_IP 0x0a000201u /* 10.0.2.1: a media server (trusted) */

/* The input is a list of messages separated by the two bytes FF FE.  Each
 * message's first byte says how it travels: bit 0 from the media server
 * (else the phone), bit 1 over the sender's one TCP stream (else a
 * datagram), bits 2..7 a delay in ms before it is sent. */
struct sender_cfg {
  const uint8_t *data;
  size_t size;
  bool media; /* which sender this is */
};

struct sender {
  struct kz_env *env;
  const struct sender_cfg *cfg;
  struct kz_udp *udp;
  struct kz_stream *tcp;
  struct kz_timer timer;
  size_t pos; /* next message in cfg->data */
};

static void on_recv(void *arg, struct kz_udp *u, const struct kz_addr *from, const uint8_t *d, size_t n) {
  (void)arg, (void)u, (void)from, (void)d, (void)n; /* replies: the proxy answered, fine */
}
static void s_connect(void *arg, struct kz_stream *s) { (void)arg, (void)s; }
static void s_data(void *arg, struct kz_stream *s, const uint8_t *d, size_t n) { (void)arg, (void)s, (void)d, (void)n; }
static void s_close(void *arg, struct kz_stream *s, int status) {
  (void)s, (void)status;
  struct sender *x = arg;
  kz_stream_close(x->tcp); /* the proxy closed it (a framing error): a new one next time */
  x->tcp = NULL;
}
static const struct kz_stream_cbs tcp_cbs = {s_connect, s_data, s_close};

/* Sends the messages meant for this sender, one per timer tick. */
static void send_next(void *arg) {
  struct sender *x = arg;
  const uint8_t *d = x->cfg->data;
  size_t n = x->cfg->size;
  size_t start, clen;
  while (kz_fuzz_next_chunk(d, n, &x->pos, &start, &clen)) {
    if (clen == 0) continue;
    uint8_t ctl = d[start];
    if (((ctl & 1) != 0) != x->cfg->media) continue;
    const uint8_t *msg = d + start + 1;
    size_t len = clen - 1;
    struct kz_addr proxy = kz_addr_v4(PROXY_IP, 5060);
    if (ctl & 2) {
      if (!x->tcp && kz_stream_connect(x->env, &proxy, &tcp_cbs, x, &x->tcp) != 0) x->tcp = NULL;
      if (x->tcp) (void)kz_stream_write(x->tcp, msg, len);
    } else {
      (void)kz_udp_send(x->udp, &proxy, msg, len);
    }
    (void)kz_timer_start(&x->timer, (uint64_t)(ctl >> 2) * MS);
    return;
  }
}

static int sender_start(struct kz_env *env, const void *cfg, void **out) {
  struct sender *x = calloc(1, sizeof *x);
  if (!x) return KZ_ENOMEM;
  x->env = env;
  x->cfg = cfg;
  struct kz_addr local = kz_addr_v4(x->cfg->media ? MEDIA_IP : PHONE_IP, 5060);
  int rc = kz_udp_bind(env, &local, on_recv, x, &x->udp);
  if (rc) {
    free(x);
    return rc;
  }
  kz_timer_init(&x->timer, env, send_next, x);
  (void)kz_timer_start(&x->timer, 1000 * MS); /* the proxy is up and probing by then */
  *out = x;
  return 0;
}

static void sender_stop(void *inst) {
  struct sender *x = inst;
  kz_timer_stop(&x->timer);
  kz_stream_close(x->tcp);
  kz_udp_close(x->udp);
  free(x);
}

static const struct kz_sim_app sender_app = {"fuzz-sender", sender_start, sender_stop};
static const struct kz_sim_app proxy_app = {"proxy", kz_proxy_start, kz_proxy_stop};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 64 * 1024) return 0;
  struct kz_sim *sim = NULL;
  KZ_FUZZ_CHECK(kz_sim_new(&sim, 1) == 0);
  struct kz_addr pa = kz_addr_v4(PROXY_IP, 0), ph = kz_addr_v4(PHONE_IP, 0), ma = kz_addr_v4(MEDIA_IP, 0);
  struct kz_sim_host *hp, *hph, *hm;
  KZ_FUZZ_CHECK(kz_sim_host_add(sim, "proxy", &pa, &hp) == 0);
  KZ_FUZZ_CHECK(kz_sim_host_add(sim, "phone", &ph, &hph) == 0);
  KZ_FUZZ_CHECK(kz_sim_host_add(sim, "media", &ma, &hm) == 0);

  struct fb_broker *br = calloc(1, sizeof *br);
  KZ_FUZZ_CHECK(br != NULL);
  fb_add_user(br, "dev1001", "acme.sip.example.com", "s3cret-1001");
  struct kz_proxy_config *pc = malloc(sizeof *pc);
  KZ_FUZZ_CHECK(pc != NULL);
  kz_proxy_config_defaults(pc);
  snprintf(pc->listen, sizeof pc->listen, "10.0.0.1:5060");
  snprintf(pc->media_servers[0], sizeof pc->media_servers[0], "sip:10.0.2.1:5060");
  pc->n_media_servers = 1;
  pc->bus_factory = fb_factory;
  pc->bus_arg = br;

  struct sender_cfg phone = {data, size, false}, media = {data, size, true};
  struct kz_sim_proc *proxy = NULL;
  KZ_FUZZ_CHECK(kz_sim_proc_add(hp, "proxy", &proxy_app, pc, &proxy) == 0);
  KZ_FUZZ_CHECK(kz_sim_proc_add(hph, "sender", &sender_app, &phone, NULL) == 0);
  KZ_FUZZ_CHECK(kz_sim_proc_add(hm, "sender", &sender_app, &media, NULL) == 0);
  /* Long enough for every transaction the input started to end (timer
   * F/H: 32 s) and for probes and NAT pings to run. */
  KZ_FUZZ_CHECK(kz_sim_run_for(sim, 70000 * MS) == 0);
  KZ_FUZZ_CHECK(kz_sim_proc_is_running(proxy));
  if (getenv("KZ_FUZZ_VERBOSE")) { /* what an input reached, for growing the seed corpus */
    struct kz_proxy_stats st;
    kz_proxy_get_stats(kz_sim_proc_instance(proxy), &st);
    fprintf(stderr, "requests %llu responses %llu malformed %llu local %llu forwarded %llu challenged %llu "
            "authn %llu flood_dropped %llu filtered %llu probes %llu\n",
            (unsigned long long)st.requests_in, (unsigned long long)st.responses_in,
            (unsigned long long)st.malformed, (unsigned long long)st.replies_local,
            (unsigned long long)st.forwarded, (unsigned long long)st.registers_challenged,
            (unsigned long long)st.authn_requests, (unsigned long long)st.flood_dropped,
            (unsigned long long)st.filtered, (unsigned long long)st.probes_sent);
  }
  kz_sim_free(sim); /* stops the processes: every handle and byte released */
  free(pc);
  free(br);
  return 0;
}
