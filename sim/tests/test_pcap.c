/* test_pcap.c — Check suite: the simulator's pcap output is a capture tshark decodes (UDP, TCP streams, SIP, fragments). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kz/buf.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sim.h"
#include "kz/sim_echo.h"
#include "kz_test.h"

#define MS UINT64_C(1000000)
#define TSHARK "/usr/bin/tshark"

/* A capture file in /tmp, removed by pcap_tmp_done. */
struct pcap_tmp {
  char path[64];
  FILE *f;
};

static void pcap_tmp_open(struct pcap_tmp *p) {
  snprintf(p->path, sizeof p->path, "/tmp/kz_sim_pcap_XXXXXX");
  int fd = mkstemp(p->path);
  ck_assert_int_ge(fd, 0);
  p->f = fdopen(fd, "w+b");
  ck_assert_ptr_nonnull(p->f);
}

static void pcap_tmp_done(struct pcap_tmp *p) {
  if (p->f) fclose(p->f);
  unlink(p->path);
}

/* Reads the whole file and checks the classic pcap structure: returns
 * the number of frames. */
static size_t pcap_frames(FILE *f) {
  ck_assert_int_eq(fflush(f), 0);
  rewind(f);
  uint8_t h[24];
  ck_assert_uint_eq(fread(h, 1, 24, f), 24);
  ck_assert_int_eq(h[0], 0x4d); /* 0xa1b23c4d little-endian: ns timestamps */
  ck_assert_int_eq(h[3], 0xa1);
  ck_assert_int_eq(h[20], 1); /* LINKTYPE_ETHERNET */
  size_t n = 0;
  uint64_t last = 0;
  uint8_t r[16];
  while (fread(r, 1, 16, f) == 16) {
    uint32_t sec = (uint32_t)r[0] | (uint32_t)r[1] << 8 | (uint32_t)r[2] << 16 | (uint32_t)r[3] << 24;
    uint32_t nsec = (uint32_t)r[4] | (uint32_t)r[5] << 8 | (uint32_t)r[6] << 16 | (uint32_t)r[7] << 24;
    uint32_t incl = (uint32_t)r[8] | (uint32_t)r[9] << 8 | (uint32_t)r[10] << 16 | (uint32_t)r[11] << 24;
    uint64_t t = (uint64_t)sec * 1000000000u + nsec;
    ck_assert_uint_ge(t, (uint64_t)KZ_SIM_EPOCH_NS); /* virtual time on the sim epoch */
    ck_assert_uint_ge(t, last);                      /* never backwards */
    last = t;
    ck_assert_int_eq(fseek(f, (long)incl, SEEK_CUR), 0);
    n++;
  }
  ck_assert(feof(f));
  return n;
}

static bool have_tshark(void) {
  if (access(TSHARK, X_OK) == 0) return true;
  fprintf(stderr, "test_pcap: %s not installed, tshark checks skipped\n", TSHARK);
  return false;
}

/* Runs tshark with `args` on the capture; stdout into out.  Fails the
 * test on a non-zero exit or any diagnostic other than the "running as
 * root" notice. */
static void tshark(const struct pcap_tmp *p, const char *args, struct kz_buf *out) {
  char errpath[80];
  snprintf(errpath, sizeof errpath, "%s.err", p->path);
  char cmd[512];
  snprintf(cmd, sizeof cmd, TSHARK " -n -r %s %s 2>%s", p->path, args, errpath);
  FILE *pp = popen(cmd, "r");
  ck_assert_ptr_nonnull(pp);
  char buf[4096];
  size_t n;
  kz_buf_reset(out);
  while ((n = fread(buf, 1, sizeof buf, pp)) > 0) kz_buf_append(out, buf, n);
  int status = pclose(pp);
  FILE *ef = fopen(errpath, "r");
  ck_assert_ptr_nonnull(ef);
  char line[512];
  while (fgets(line, sizeof line, ef)) {
    if (strstr(line, "Running as user")) continue;
    ck_abort_msg("tshark said: %s", line);
  }
  fclose(ef);
  unlink(errpath);
  ck_assert_msg(status == 0, "tshark failed (%d): %s", status, cmd);
  ck_assert_ptr_null(strstr(out->len ? (const char *)out->data : "", "Malformed"));
}

static bool contains(const char *p, size_t len, const char *needle) {
  size_t n = strlen(needle);
  for (size_t i = 0; i + n <= len; i++)
    if (!memcmp(p + i, needle, n)) return true;
  return false;
}

static size_t count_lines(const struct kz_buf *b, const char *needle) {
  size_t n = 0;
  const char *p = b->len ? (const char *)b->data : "";
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    if (!needle || contains(p, len, needle)) n++;
    p += len + (nl ? 1 : 0);
  }
  return n;
}

START_TEST(test_echo_capture_decodes) {
  struct pcap_tmp p;
  pcap_tmp_open(&p);
  struct kz_sim_echo_cfg cfg = {
      .seed = 42, .duration_ns = 1500 * MS, .count = 5, .pcap_file = p.f};
  struct kz_sim_echo_result r;
  ck_assert_int_eq(kz_sim_echo_run(&cfg, &r), 0);
  ck_assert(r.done);
  size_t frames = pcap_frames(p.f);
  /* 5 UDP echoes (10 datagrams), a handshake (3), 5 stream echoes (10). */
  ck_assert_uint_ge(frames, 23);
  if (have_tshark()) {
    struct kz_buf out;
    kz_buf_init(&out);
    tshark(&p, "-T fields -e ip.src -e udp.dstport -e tcp.stream", &out);
    ck_assert_uint_eq(count_lines(&out, NULL), frames);
    ck_assert_uint_eq(count_lines(&out, "10.0.0.1") + count_lines(&out, "10.0.0.2"), frames);
    ck_assert_uint_eq(count_lines(&out, "\t7\t"), 5);     /* requests to udp/7 */
    ck_assert_uint_eq(count_lines(&out, "\t\t0"), frames - 10); /* one TCP stream, index 0 */
    ck_assert_uint_eq(count_lines(&out, "\t\t1"), 0);
    /* TCP analysis finds nothing wrong with the numbers. */
    tshark(&p, "-Y \"tcp.analysis.flags || _ws.malformed || _ws.expert.severity >= warning\"", &out);
    ck_assert_msg(out.len == 0, "tshark flagged: %s", (const char *)out.data);
    tshark(&p, "-Y \"tcp.flags.syn == 1 && tcp.flags.ack == 0\"", &out);
    ck_assert_uint_eq(count_lines(&out, NULL), 1);
    kz_buf_free(&out);
  }
  pcap_tmp_done(&p);
}
END_TEST

/* A do-nothing app: binds udp/5060 and listens on tcp/5060; accepted
 * streams are kept until stop. */
struct sink {
  struct kz_udp *u;
  struct kz_listener *l;
  struct kz_stream *s[4];
  int n;
};

static void sink_recv(void *arg, struct kz_udp *u, const struct kz_addr *from,
                      const uint8_t *data, size_t len) {
  (void)arg, (void)u, (void)from, (void)data, (void)len;
}
static void s_connect(void *arg, struct kz_stream *s) { (void)arg, (void)s; }
static void s_data(void *arg, struct kz_stream *s, const uint8_t *d, size_t n) {
  (void)arg, (void)s, (void)d, (void)n;
}
static void s_close(void *arg, struct kz_stream *s, int status) { (void)arg, (void)s, (void)status; }
static const struct kz_stream_cbs sink_cbs = {s_connect, s_data, s_close};

static void sink_accept(void *arg, struct kz_listener *l, struct kz_stream *s) {
  struct sink *k = arg;
  (void)l;
  ck_assert_int_lt(k->n, 4);
  k->s[k->n++] = s;
  kz_stream_set_cbs(s, &sink_cbs, k);
}

static int sink_start(struct kz_env *env, const void *cfg, void **inst) {
  (void)cfg;
  struct sink *k = kz_calloc(1, sizeof *k);
  if (!k) return KZ_ENOMEM;
  struct kz_addr a = kz_addr_v4(0, 5060);
  int rc = kz_udp_bind(env, &a, sink_recv, k, &k->u);
  if (!rc) rc = kz_stream_listen(env, &a, sink_accept, k, &k->l);
  if (rc) {
    kz_udp_close(k->u);
    kz_free(k);
    return rc;
  }
  *inst = k;
  return 0;
}

static void sink_stop(void *inst) {
  struct sink *k = inst;
  for (int i = 0; i < k->n; i++) kz_stream_close(k->s[i]);
  kz_udp_close(k->u);
  kz_listener_close(k->l);
  kz_free(k);
}

static const struct kz_sim_app sink_app = {"sink", sink_start, sink_stop};

static const char REGISTER[] =
    "REGISTER sip:example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n"
    "Max-Forwards: 70\r\n"
    "To: <sip:alice@example.com>\r\n"
    "From: <sip:alice@example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@10.0.0.1\r\n"
    "CSeq: 1 REGISTER\r\n"
    "Contact: <sip:alice@10.0.0.1:5060>\r\n"
    "Expires: 3600\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

START_TEST(test_sip_and_fragments_decode) {
  struct pcap_tmp p;
  pcap_tmp_open(&p);
  struct kz_sim *sim;
  ck_assert_int_eq(kz_sim_new(&sim, 1), 0);
  ck_assert_int_eq(kz_sim_set_pcap_file(sim, p.f), 0);
  struct kz_addr ia = kz_addr_v4(0x0a000001, 0), ib = kz_addr_v4(0x0a000002, 0);
  struct kz_sim_host *a, *b;
  ck_assert_int_eq(kz_sim_host_add(sim, "ua", &ia, &a), 0);
  ck_assert_int_eq(kz_sim_host_add(sim, "registrar", &ib, &b), 0);
  struct kz_sim_proc *pa, *pb;
  ck_assert_int_eq(kz_sim_proc_add(b, "sink", &sink_app, NULL, &pb), 0);
  ck_assert_int_eq(kz_sim_proc_add(a, "sink", &sink_app, NULL, &pa), 0);
  struct sink *ka = kz_sim_proc_instance(pa);
  struct kz_addr to = kz_addr_v4(0x0a000002, 5060);
  /* REGISTER over UDP, then over a stream, then a 4000-byte datagram
   * (three IPv4 fragments). */
  ck_assert_int_eq(kz_udp_send(ka->u, &to, REGISTER, strlen(REGISTER)), 0);
  struct kz_stream *s = NULL;
  ck_assert_int_eq(kz_stream_connect(kz_sim_proc_env(pa), &to, &sink_cbs, NULL, &s), 0);
  ck_assert_int_eq(kz_stream_write(s, REGISTER, strlen(REGISTER)), 0);
  uint8_t *big = kz_calloc(1, 4000);
  memset(big, 'z', 4000);
  struct kz_addr to6000 = kz_addr_v4(0x0a000002, 6000);
  ck_assert_int_eq(kz_udp_send(ka->u, &to6000, big, 4000), 0);
  kz_free(big);
  ck_assert_int_eq(kz_sim_run_until(sim, 10 * MS), 0);
  kz_stream_close(s);
  ck_assert_int_eq(kz_sim_run_until(sim, 20 * MS), 0);
  kz_sim_free(sim);
  /* UDP REGISTER, the big datagram's 3 fragments, SYN, SYN-ACK, ACK, the
   * stream's REGISTER, the client's FIN (the sink never closes). */
  ck_assert_uint_eq(pcap_frames(p.f), 1 + 3 + 3 + 1 + 1);
  if (have_tshark()) {
    struct kz_buf out;
    kz_buf_init(&out);
    tshark(&p, "-Y sip -T fields -e sip.Method -e sip.Call-ID", &out);
    ck_assert_uint_eq(count_lines(&out, NULL), 2); /* over UDP and over TCP */
    ck_assert_uint_eq(count_lines(&out, "REGISTER\ta84b4c76e66710@10.0.0.1"), 2);
    tshark(&p, "-Y \"udp.length == 4008\" -T fields -e ip.src", &out);
    ck_assert_uint_eq(count_lines(&out, "10.0.0.1"), 1); /* reassembled */
    tshark(&p, "-Y \"tcp.analysis.flags || _ws.malformed || _ws.expert.severity >= warning\"", &out);
    ck_assert_msg(out.len == 0, "tshark flagged: %s", (const char *)out.data);
    kz_buf_free(&out);
  }
  pcap_tmp_done(&p);
}
END_TEST

static Suite *pcap_suite(void) {
  Suite *s = suite_create("sim-pcap");
  TCase *tc = kz_tcase(s, "pcap", 30);
  tcase_add_test(tc, test_echo_capture_decodes);
  tcase_add_test(tc, test_sip_and_fragments_decode);
  return s;
}

int main(void) { return kz_run_suite(pcap_suite()); }
