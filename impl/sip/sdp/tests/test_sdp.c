/* test_sdp.c — Check suite for kz_sdp: parsing (RFC 4566/8866, RFC 5118), printing, offer/answer (RFC 3264/4317), rewriting. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/buf.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sdp.h"
#include "kz_test.h"

/* ---- helpers -------------------------------------------------------------- */

static struct kz_sdp *parse_ok(const char *text) {
  struct kz_sdp *sdp = NULL;
  struct kz_sdp_error err;
  int rc = kz_sdp_parse(&sdp, text, strlen(text), NULL, &err);
  ck_assert_msg(rc == 0, "parse failed: %s (%s)\n%s", err.reason, kz_err_name(rc), text);
  ck_assert_ptr_nonnull(sdp);
  return sdp;
}

static void parse_bad(const char *text, int want, const char *reason) {
  struct kz_sdp *sdp = NULL;
  struct kz_sdp_error err;
  int rc = kz_sdp_parse(&sdp, text, strlen(text), NULL, &err);
  ck_assert_msg(rc == want, "want %s got %s (%s) for:\n%s", kz_err_name(want), kz_err_name(rc),
                err.reason, text);
  ck_assert_ptr_null(sdp);
  ck_assert_msg(strcmp(err.reason, reason) == 0, "reason \"%s\", want \"%s\"", err.reason, reason);
}

static bool seq(struct kz_slice s, const char *c) { return kz_slice_eq_cstr(s, c); }

#define ck_slice(s, c) ck_assert_msg(seq((s), (c)), "got \"%.*s\", want \"%s\"", (int)(s).len, (s).p, (c))

/* print(parse(text)) as a NUL-terminated heap string (kz_malloc). */
static char *reprint(const char *text) {
  struct kz_sdp *sdp = parse_ok(text);
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_sdp_print(sdp, &b), 0);
  kz_deref(sdp);
  char *s = kz_strndup((const char *)b.data, b.len);
  kz_buf_free(&b);
  return s;
}

/* Printing is a fixed point after one round. */
static void check_roundtrip(const char *text) {
  char *a = reprint(text);
  char *b = reprint(a);
  ck_assert_str_eq(a, b);
  kz_free(a);
  kz_free(b);
}

static char *answer_of(const char *offer_text, const struct kz_sdp_answer_params *p) {
  struct kz_sdp *offer = parse_ok(offer_text);
  struct kz_buf b;
  kz_buf_init(&b);
  int rc = kz_sdp_answer(offer, p, &b);
  ck_assert_msg(rc == 0, "answer: %s", kz_err_name(rc));
  kz_deref(offer);
  /* Every answer we build must itself parse. */
  struct kz_sdp *ans = parse_ok((const char *)b.data);
  kz_deref(ans);
  char *s = kz_strndup((const char *)b.data, b.len);
  kz_buf_free(&b);
  return s;
}

static const struct kz_sdp_codec default_codecs[] = {
    {NULL, "PCMU", 8000, 0, NULL},           {NULL, "PCMA", 8000, 0, NULL},
    {NULL, "G722", 8000, 0, NULL},           {NULL, "telephone-event", 8000, 0, NULL},
    {"audio", "opus", 48000, 2, NULL},
};

static struct kz_sdp_answer_params default_params(const uint16_t *ports, size_t n) {
  struct kz_sdp_answer_params p;
  memset(&p, 0, sizeof(p));
  p.codecs = default_codecs;
  p.ncodecs = sizeof(default_codecs) / sizeof(default_codecs[0]);
  p.username = KZ_SLICE_LIT("kz");
  p.sess_id = 1000;
  p.sess_version = 1;
  p.addr = KZ_SLICE_LIT("192.0.2.100");
  p.ports = ports;
  p.nports = n;
  return p;
}

/* ---- RFC 4566 §5 example -------------------------------------------------- */

static const char rfc4566_example[] =
    "v=0\r\n"
    "o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\n"
    "s=SDP Seminar\r\n"
    "i=A Seminar on the session description protocol\r\n"
    "u=http://www.example.com/seminars/sdp.pdf\r\n"
    "e=j.doe@example.com (Jane Doe)\r\n"
    "c=IN IP4 224.2.17.12/127\r\n"
    "t=2873397496 2873404696\r\n"
    "a=recvonly\r\n"
    "m=audio 49170 RTP/AVP 0\r\n"
    "m=video 51372 RTP/AVP 99\r\n"
    "a=rtpmap:99 h263-1998/90000\r\n";

START_TEST(rfc4566_example_parses) {
  struct kz_sdp *s = parse_ok(rfc4566_example);
  ck_slice(s->origin.username, "jdoe");
  ck_slice(s->origin.sess_id, "2890844526");
  ck_assert_uint_eq(s->origin.sess_version, 2890842807u);
  ck_assert_int_eq(s->origin.addr.family, KZ_SDP_ADDR_IP4);
  ck_assert(s->origin.addr.literal);
  ck_assert_mem_eq(s->origin.addr.ip, "\x0a\x2f\x10\x05", 4);
  ck_slice(s->name, "SDP Seminar");
  ck_assert(s->has_info && s->has_uri);
  ck_slice(s->uri, "http://www.example.com/seminars/sdp.pdf");
  ck_assert_uint_eq(s->nemails, 1);
  ck_slice(s->emails[0], "j.doe@example.com (Jane Doe)");
  ck_assert(s->has_conn);
  ck_slice(s->conn.host, "224.2.17.12");
  ck_assert_uint_eq(s->conn.ttl, 127);
  ck_assert_uint_eq(s->conn.count, 0);
  ck_assert_uint_eq(s->ntimes, 1);
  ck_assert_uint_eq(s->times[0].start, 2873397496u);
  ck_assert_uint_eq(s->times[0].stop, 2873404696u);
  ck_assert_int_eq(s->dir, KZ_SDP_RECVONLY);
  ck_assert_uint_eq(s->nmedia, 2);
  ck_slice(s->media[0].type, "audio");
  ck_assert_uint_eq(s->media[0].port, 49170);
  ck_slice(s->media[0].proto, "RTP/AVP");
  ck_assert_uint_eq(s->media[0].nfmts, 1);
  ck_slice(s->media[0].fmts[0], "0");
  ck_assert_uint_eq(s->media[0].line, 10);
  ck_assert_int_eq(kz_sdp_media_dir(s, 0), KZ_SDP_RECVONLY);
  struct kz_sdp_rtpmap r;
  ck_assert_int_eq(kz_sdp_media_codec(&s->media[0], 0, &r), 0);
  ck_slice(r.encoding, "PCMU");
  ck_assert_uint_eq(r.clock, 8000);
  const struct kz_sdp_rtpmap *v = kz_sdp_media_rtpmap(&s->media[1], 99);
  ck_assert_ptr_nonnull(v);
  ck_slice(v->encoding, "h263-1998");
  ck_assert_uint_eq(v->clock, 90000);
  ck_assert_uint_eq(v->channels, 0);
  ck_assert_int_eq(kz_sdp_media_codec(&s->media[1], 98, &r), KZ_ENOENT);
  /* Zero-copy: slices point into the input. */
  ck_assert(s->name.p > rfc4566_example && s->name.p < rfc4566_example + sizeof(rfc4566_example));
  kz_deref(s);
}
END_TEST

START_TEST(print_canonical_is_identity) {
  /* A description already in canonical form prints back byte for byte. */
  char *out = reprint(rfc4566_example);
  ck_assert_str_eq(out, rfc4566_example);
  kz_free(out);
}
END_TEST

START_TEST(bare_lf_and_spacing) {
  const char *lf = "v=0\no=- 1 2 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n"
                   "m=audio  4000 RTP/AVP 0  8\na=rtpmap:0 PCMU/8000\n";
  char *out = reprint(lf);
  ck_assert_str_eq(out, "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
                        "m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n");
  kz_free(out);
  /* No line end after the last line, and trailing empty lines, are accepted. */
  struct kz_sdp *s = parse_ok("v=0\r\no=- 1 2 IN IP4 h\r\ns=x\r\nt=0 0");
  ck_assert_uint_eq(s->nmedia, 0);
  kz_deref(s);
  s = parse_ok("v=0\r\no=- 1 2 IN IP4 h\r\ns=x\r\nt=0 0\r\n\r\n\r\n");
  kz_deref(s);
}
END_TEST

START_TEST(time_repeat_zone_key_bandwidth) {
  const char *t = "v=0\r\n"
                  "o=- 1 2 IN IP4 10.0.0.1\r\n"
                  "s=Repeats\r\n"
                  "p=+1 617 555-6011\r\n"
                  "c=IN IP4 224.2.1.1/127/3\r\n"
                  "b=CT:128\r\n"
                  "t=3034423619 3042462419\r\n"
                  "r=604800 3600 0 90000\r\n"
                  "r=7d 1h 0 25h\r\n"
                  "t=0 0\r\n"
                  "z=2882844526 -1h 2898848070 0\r\n"
                  "k=prompt\r\n"
                  "a=tool:kz\r\n"
                  "m=audio 49170/2 RTP/AVP 0\r\n"
                  "i=main audio\r\n"
                  "c=IN IP6 FF15::101/3\r\n"
                  "b=AS:64\r\n"
                  "k=clear:abc\r\n"
                  "a=ptime:20\r\n"
                  "a=rtcp:53020 IN IP4 126.16.64.4\r\n"
                  "a=fmtp:0 x=y; z=w\r\n";
  struct kz_sdp *s = parse_ok(t);
  ck_assert_uint_eq(s->nphones, 1);
  ck_assert_uint_eq(s->conn.ttl, 127);
  ck_assert_uint_eq(s->conn.count, 3);
  ck_assert_uint_eq(s->nbws, 1);
  ck_slice(s->bws[0].type, "CT");
  ck_assert_uint_eq(s->bws[0].value, 128);
  ck_assert_uint_eq(s->ntimes, 2);
  ck_assert_uint_eq(s->times[0].nrepeats, 2);
  ck_slice(s->times[0].repeats[1], "7d 1h 0 25h");
  ck_assert_uint_eq(s->times[1].nrepeats, 0);
  ck_assert(s->has_zone && s->has_key);
  ck_assert_uint_eq(s->nattrs, 1);
  ck_slice(s->attrs[0].value, "kz");
  const struct kz_sdp_media *m = &s->media[0];
  ck_assert_uint_eq(m->nports, 2);
  ck_assert(m->has_info && m->has_key);
  ck_assert_uint_eq(m->nconns, 1);
  ck_assert_int_eq(m->conns[0].family, KZ_SDP_ADDR_IP6);
  ck_assert_uint_eq(m->conns[0].count, 3);
  ck_assert_mem_eq(m->conns[0].ip, "\xff\x15\0\0\0\0\0\0\0\0\0\0\0\0\x01\x01", 16);
  ck_assert_uint_eq(m->ptime, 20);
  ck_assert(m->has_rtcp && m->rtcp.has_addr);
  ck_assert_uint_eq(m->rtcp.port, 53020);
  ck_slice(m->rtcp.addr.host, "126.16.64.4");
  struct kz_slice fp;
  ck_assert(kz_sdp_media_fmtp(m, KZ_SLICE_LIT("0"), &fp));
  ck_slice(fp, "x=y; z=w");
  kz_deref(s);
  char *out = reprint(t);
  ck_assert_str_eq(out, t);
  kz_free(out);
}
END_TEST

/* ---- RFC 5118 SDP bodies -------------------------------------------------- */

/* Reads a SIP message from the shared corpus and returns its body, or NULL
 * (with a note) when the corpus is not there. */
static uint8_t *sip_body(const char *rel, const char **body) {
  char path[1024];
  size_t len;
  uint8_t *msg = kz_test_read_file(kz_test_shared_path(path, sizeof(path), rel), &len);
  if (!msg) {
    fprintf(stderr, "skip: %s not found\n", path);
    return NULL;
  }
  char *sep = strstr((char *)msg, "\r\n\r\n");
  ck_assert_ptr_nonnull(sep);
  *body = sep + 4;
  return msg;
}

START_TEST(rfc5118_ipv6_in_sdp) {
  const char *body;
  uint8_t *msg = sip_body("corpora/rfc5118/ipv6-in-sdp.dat", &body);
  if (!msg) return;
  struct kz_sdp *s = parse_ok(body);
  ck_assert_int_eq(s->origin.addr.family, KZ_SDP_ADDR_IP6);
  ck_slice(s->origin.addr.host, "2001:db8::20");
  ck_slice(s->origin.sess_id, "971731711378798081");
  ck_assert(s->has_conn && s->conn.literal);
  ck_assert_int_eq(s->conn.family, KZ_SDP_ADDR_IP6);
  ck_assert_mem_eq(s->conn.ip, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x20", 16);
  ck_assert_uint_eq(s->nmedia, 2);
  ck_assert_uint_eq(s->media[0].port, 6000);
  ck_slice(s->media[0].rtpmaps[0].encoding, "G726-32");
  ck_assert_uint_eq(s->media[1].rtpmaps[0].pt, 107);
  ck_assert_uint_eq(s->media[1].rtpmaps[0].clock, 90000);
  kz_deref(s);
  check_roundtrip(body);
  free(msg);
}
END_TEST

START_TEST(rfc5118_mult_ip_in_sdp) {
  const char *body;
  uint8_t *msg = sip_body("corpora/rfc5118/mult-ip-in-sdp.dat", &body);
  if (!msg) return;
  struct kz_sdp *s = parse_ok(body);
  ck_assert(!s->has_conn);
  ck_slice(s->name, "");
  ck_assert_uint_eq(s->nmedia, 2);
  const struct kz_sdp_conn *a = kz_sdp_media_conn(s, 0), *v = kz_sdp_media_conn(s, 1);
  ck_assert_int_eq(a->family, KZ_SDP_ADDR_IP4);
  ck_assert_mem_eq(a->ip, "\xc0\x00\x02\x01", 4);
  ck_assert_int_eq(v->family, KZ_SDP_ADDR_IP6);
  ck_assert_mem_eq(v->ip, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
  kz_deref(s);
  check_roundtrip(body);
  free(msg);
}
END_TEST

START_TEST(rfc5118_ipv4_mapped) {
  const char *body;
  uint8_t *msg = sip_body("corpora/rfc5118/ipv4-mapped-ipv6.dat", &body);
  if (!msg) return;
  struct kz_sdp *s = parse_ok(body);
  ck_assert_mem_eq(s->conn.ip, "\0\0\0\0\0\0\0\0\0\0\xff\xff\xc0\x00\x02\x02", 16);
  kz_deref(s);
  free(msg);
}
END_TEST

/* ---- malformed input ------------------------------------------------------ */

#define HDR "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\n"
#define HDRT HDR "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"

struct bad_case {
  const char *text;
  int rc;
  const char *reason;
};

static const struct bad_case bad_cases[] = {
    {"", KZ_EPROTO, "line 1: empty session description"},
    {"\r\n", KZ_EPROTO, "line 1: empty session description"},
    {"o=- 1 2 IN IP4 h\r\n", KZ_EPROTO, "line 1: must start with v="},
    {"v=1\r\n", KZ_EPROTO, "line 1: v= must be 0"},
    {"v=0\r\ns=x\r\n", KZ_EPROTO, "line 2: missing o= line"},
    {"v=0\r\no=- 1 2 IN IP4 h\r\nt=0 0\r\n", KZ_EPROTO, "line 3: missing s= line"},
    {HDR "m=audio 1 RTP/AVP 0\r\n", KZ_EPROTO, "line 4: missing t= line before m="},
    {HDR, KZ_EPROTO, "line 4: missing t= line"},
    {"v=0\r\no=- x 2 IN IP4 h\r\n", KZ_EPROTO, "line 2: o= session id not a number"},
    {"v=0\r\no=- 1 2x IN IP4 h\r\n", KZ_EPROTO, "line 2: o= session version not a number"},
    {"v=0\r\no=- 1 99999999999999999999 IN IP4 h\r\n", KZ_EPROTO,
     "line 2: o= session version out of range"},
    {"v=0\r\no=- 1 2 IN IP4\r\n", KZ_EPROTO,
     "line 2: o= needs <username> <sess-id> <sess-version> <nettype> <addrtype> <address>"},
    {"v=0\r\no=- 1 2 IN IP4 224.0.0.1/3\r\n", KZ_EPROTO, "line 2: o= address must be unicast"},
    {HDR "c=IN IP4 192.0.2.300\r\n", KZ_EPROTO, "line 4: c= bad IPv4 address"},
    {HDR "c=IN IP6 2001:db8:::1\r\n", KZ_EPROTO, "line 4: c= bad IPv6 address"},
    {HDR "c=IN IP4 2001:db8::1\r\n", KZ_EPROTO, "line 4: c= bad IPv4 address"},
    {HDR "c=IN IP4 224.2.1.1/300\r\n", KZ_EPROTO, "line 4: c= bad multicast TTL"},
    {HDR "c=IN IP4\r\n", KZ_EPROTO, "line 4: c= needs <nettype> <addrtype> <address>"},
    {HDR "b=AS\r\n", KZ_EPROTO, "line 4: b= malformed, expected <bwtype>:<bandwidth>"},
    {HDR "b=AS:fast\r\n", KZ_EPROTO, "line 4: b= bandwidth not a number"},
    {HDR "t=now 0\r\n", KZ_EPROTO, "line 4: t= start time not a number"},
    {HDR "t=0\r\n", KZ_EPROTO, "line 4: t= needs <start-time> <stop-time>"},
    {HDR "r=1 2 3\r\n", KZ_EPROTO, "line 4: r= without a preceding t="},
    {HDRT "r=1x 2 3\r\n", KZ_EPROTO, "line 6: r= field is not a time"},
    {HDRT "z=1\r\n", KZ_EPROTO, "line 6: z= needs <adjustment-time> <offset> pairs"},
    {HDRT "c=IN IP4 192.0.2.2\r\n", KZ_EPROTO, "line 6: c= out of order (after t=)"},
    {HDR "s=again\r\n", KZ_EPROTO, "line 4: duplicate s= line"},
    {HDRT "x=1\r\n", KZ_EPROTO, "line 6: unknown line type 'x='"},
    {HDRT "hello\r\n", KZ_EPROTO, "line 6: not a <type>=<value> line"},
    {HDRT "A=x\r\n", KZ_EPROTO, "line 6: not a <type>=<value> line"},
    {HDRT "a=x\ry\r\n", KZ_EPROTO, "line 6: stray CR inside the line"},
    {HDRT "\r\na=x\r\n", KZ_EPROTO, "line 6: empty line inside the description"},
    {HDRT "a=\r\n", KZ_EPROTO, "line 6: a= attribute name empty or invalid"},
    {HDRT "a=sendonly\r\na=recvonly\r\n", KZ_EPROTO, "line 7: second direction attribute"},
    {HDRT "a=sendonly:yes\r\n", KZ_EPROTO, "line 6: a=sendonly takes no value"},
    {HDRT "m=audio x RTP/AVP 0\r\n", KZ_EPROTO, "line 6: m= port not a number"},
    {HDRT "m=audio 70000 RTP/AVP 0\r\n", KZ_EPROTO, "line 6: m= port out of range"},
    {HDRT "m=audio 4000/0 RTP/AVP 0\r\n", KZ_EPROTO, "line 6: m= port count not a number"},
    {HDRT "m=audio 4000 RTP/AVP\r\n", KZ_EPROTO, "line 6: m= has no formats"},
    {HDRT "m=audio 4000\r\n", KZ_EPROTO, "line 6: m= needs <media> <port> <proto> <fmt>..."},
    {HDRT "m=audio 4000 RTP/AVP 0 200\r\n", KZ_EPROTO,
     "line 6: m= payload type 200 is not a number 0-127"},
    {HDRT "m=audio 4000 RTP/AVP 0\r\nt=0 0\r\n", KZ_EPROTO,
     "line 7: t= not allowed in a media section"},
    {HDRT "m=audio 4000 RTP/AVP 0\r\na=x\r\nc=IN IP4 1.2.3.4\r\n", KZ_EPROTO,
     "line 8: c= out of order (after a=)"},
    {HDRT "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0\r\n", KZ_EPROTO,
     "line 7: a=rtpmap needs <payload type> <encoding>/<clock rate>"},
    {HDRT "m=audio 4000 RTP/AVP 0\r\na=rtpmap:300 X/8000\r\n", KZ_EPROTO,
     "line 7: a=rtpmap payload type not a number 0-127"},
    {HDRT "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/fast\r\n", KZ_EPROTO,
     "line 7: a=rtpmap clock rate not a number"},
    {HDRT "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000/x\r\n", KZ_EPROTO,
     "line 7: a=rtpmap channels not a number"},
    {HDRT "m=audio 4000 RTP/AVP 0\r\na=ptime:abc\r\n", KZ_EPROTO, "line 7: a=ptime not a number"},
    {HDRT "m=audio 4000 RTP/AVP 0\r\na=rtcp:x\r\n", KZ_EPROTO, "line 7: a=rtcp port not a number"},
    {HDRT "m=audio 4000 RTP/AVP 0\r\na=fmtp:\r\n", KZ_EPROTO, "line 7: a=fmtp has no format"},
    {HDR "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n", KZ_EPROTO,
     "line 5: m= section has no c= line and there is no session-level c="},
};

START_TEST(malformed_reasons) {
  for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
    parse_bad(bad_cases[i].text, bad_cases[i].rc, bad_cases[i].reason);
  /* An embedded NUL is refused too (strlen-based helpers cannot express it). */
  const char nul[] = HDRT "a=x\0y\r\n";
  struct kz_sdp *s = NULL;
  struct kz_sdp_error err;
  ck_assert_int_eq(kz_sdp_parse(&s, nul, sizeof(nul) - 1, NULL, &err), KZ_EPROTO);
  ck_assert_str_eq(err.reason, "line 6: NUL byte inside the line");
  ck_assert_int_eq(kz_sdp_parse(NULL, nul, 3, NULL, &err), KZ_EINVAL);
  /* A rejected stream (port 0) needs no address. */
  s = parse_ok(HDR "t=0 0\r\nm=video 0 RTP/AVP 31\r\n");
  kz_deref(s);
}
END_TEST

START_TEST(address_forms) {
  static const struct {
    const char *addr;
    bool ok;
  } v6[] = {
      {"::", true},          {"::1", true},           {"1::", true},
      {"1:2:3:4:5:6:7:8", true}, {"1:2:3:4:5:6:7::", true}, {"::ffff:192.0.2.2", true},
      {"2001:db8::9:1", true}, {"1:2:3:4:5:6:7:8:9", false}, {"1::2::3", false},
      {":1", false},         {"1:", false},           {"12345::", false},
      {"::1.2.3", false},    {"1:2:3:4:5:6:7:1.2.3.4", false}, {"g::", false},
  };
  for (size_t i = 0; i < sizeof(v6) / sizeof(v6[0]); i++) {
    char text[256];
    snprintf(text, sizeof text, HDR "c=IN IP6 %s\r\nt=0 0\r\n", v6[i].addr);
    struct kz_sdp *s = NULL;
    int rc = kz_sdp_parse(&s, text, strlen(text), NULL, NULL);
    ck_assert_msg((rc == 0) == v6[i].ok, "%s: %s", v6[i].addr, kz_err_name(rc));
    if (s) {
      ck_assert(s->conn.literal);
      kz_deref(s);
    }
  }
  /* Host names stay names (not literals) under either address type. */
  struct kz_sdp *s = parse_ok(HDR "c=IN IP6 media.example.com\r\nt=0 0\r\n");
  ck_assert(!s->conn.literal);
  ck_assert_int_eq(s->conn.family, KZ_SDP_ADDR_IP6);
  kz_deref(s);
}
END_TEST

START_TEST(limits) {
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_buf_append_cstr(&b, HDRT), 0);
  for (int i = 0; i < 5; i++) ck_assert_int_eq(kz_buf_printf(&b, "m=audio %d RTP/AVP 0\r\n", 4000 + 2 * i), 0);
  struct kz_sdp_limits lim = {.max_media = 4};
  struct kz_sdp *s = NULL;
  struct kz_sdp_error err;
  ck_assert_int_eq(kz_sdp_parse(&s, b.data, b.len, &lim, &err), KZ_EMSGSIZE);
  ck_assert_str_eq(err.reason, "line 10: more than 4 m= sections");
  ck_assert_uint_eq(err.line, 10);
  lim = (struct kz_sdp_limits){.max_lines = 7};
  ck_assert_int_eq(kz_sdp_parse(&s, b.data, b.len, &lim, &err), KZ_EMSGSIZE);
  ck_assert_str_eq(err.reason, "line 8: more than 7 lines");
  ck_assert_int_eq(kz_sdp_parse(&s, b.data, b.len, NULL, &err), 0);
  ck_assert_uint_eq(s->nmedia, 5);
  kz_deref(s);
  kz_buf_free(&b);
}
END_TEST

START_TEST(every_prefix_is_handled) {
  /* Truncating a valid description anywhere gives 0 or an error with a
   * line-numbered reason, never a crash or a silent empty result. */
  size_t n = strlen(rfc4566_example);
  for (size_t k = 0; k <= n; k++) {
    struct kz_sdp *s = NULL;
    struct kz_sdp_error err;
    int rc = kz_sdp_parse(&s, rfc4566_example, k, NULL, &err);
    if (rc == 0) {
      kz_deref(s);
    } else {
      ck_assert_int_eq(rc, KZ_EPROTO);
      ck_assert_msg(strncmp(err.reason, "line ", 5) == 0, "k=%zu reason %s", k, err.reason);
    }
  }
}
END_TEST

/* ---- RFC 3264 §10 examples ------------------------------------------------ */

static const char rfc3264_10_1_offer[] = "v=0\r\n"
                                         "o=alice 2890844526 2890844526 IN IP4 host.anywhere.com\r\n"
                                         "s=\r\n"
                                         "c=IN IP4 host.anywhere.com\r\n"
                                         "t=0 0\r\n"
                                         "m=audio 49170 RTP/AVP 0\r\n"
                                         "a=rtpmap:0 PCMU/8000\r\n"
                                         "m=video 51372 RTP/AVP 31\r\n"
                                         "a=rtpmap:31 H261/90000\r\n"
                                         "m=video 53000 RTP/AVP 32\r\n"
                                         "a=rtpmap:32 MPV/90000\r\n";

START_TEST(rfc3264_10_1_basic_exchange) {
  /* Bob supports PCMU and MPV video but not H.261: the first video stream
   * is rejected with port 0, the others accepted. */
  static const struct kz_sdp_codec bob[] = {{NULL, "PCMU", 8000, 0, NULL},
                                            {"video", "MPV", 90000, 0, NULL}};
  uint16_t ports[] = {49920, 51374, 53002};
  struct kz_sdp_answer_params p = default_params(ports, 3);
  p.codecs = bob;
  p.ncodecs = 2;
  p.username = KZ_SLICE_LIT("bob");
  p.sess_id = 2890844730u;
  p.sess_version = 2890844730u;
  p.addr = KZ_SLICE_LIT("192.0.2.4");
  char *ans = answer_of(rfc3264_10_1_offer, &p);
  ck_assert_str_eq(ans, "v=0\r\n"
                        "o=bob 2890844730 2890844730 IN IP4 192.0.2.4\r\n"
                        "s=-\r\n"
                        "c=IN IP4 192.0.2.4\r\n"
                        "t=0 0\r\n"
                        "m=audio 49920 RTP/AVP 0\r\n"
                        "a=rtpmap:0 PCMU/8000\r\n"
                        "a=sendrecv\r\n"
                        "m=video 0 RTP/AVP 31\r\n"
                        "m=video 53002 RTP/AVP 32\r\n"
                        "a=rtpmap:32 MPV/90000\r\n"
                        "a=sendrecv\r\n");
  kz_free(ans);
}
END_TEST

static const char rfc3264_10_2_offer[] = "v=0\r\n"
                                         "o=alice 2890844526 2890844526 IN IP4 host.anywhere.com\r\n"
                                         "s=\r\n"
                                         "c=IN IP4 host.anywhere.com\r\n"
                                         "t=0 0\r\n"
                                         "m=audio 49170 RTP/AVP 0 8 97\r\n"
                                         "a=rtpmap:0 PCMU/8000\r\n"
                                         "a=rtpmap:8 PCMA/8000\r\n"
                                         "a=rtpmap:97 iLBC/8000\r\n"
                                         "m=video 51372 RTP/AVP 31 32\r\n"
                                         "a=rtpmap:31 H261/90000\r\n"
                                         "a=rtpmap:32 MPV/90000\r\n";

START_TEST(rfc3264_10_2_one_of_n_codecs) {
  /* The answerer picks iLBC and H.261.  RFC 3264's own answer renumbers
   * iLBC to 99, which §6.1 allows; kz keeps the offerer's 97 as it SHOULD. */
  static const struct kz_sdp_codec bob[] = {{NULL, "iLBC", 8000, 0, NULL},
                                            {"video", "H261", 90000, 0, NULL}};
  uint16_t ports[] = {49172, 51374};
  struct kz_sdp_answer_params p = default_params(ports, 2);
  p.codecs = bob;
  p.ncodecs = 2;
  p.username = KZ_SLICE_LIT("bob");
  p.sess_id = 2890844730u;
  p.sess_version = 2890844730u;
  char *ans = answer_of(rfc3264_10_2_offer, &p);
  ck_assert_str_eq(ans, "v=0\r\n"
                        "o=bob 2890844730 2890844730 IN IP4 192.0.2.100\r\n"
                        "s=-\r\n"
                        "c=IN IP4 192.0.2.100\r\n"
                        "t=0 0\r\n"
                        "m=audio 49172 RTP/AVP 97\r\n"
                        "a=rtpmap:97 iLBC/8000\r\n"
                        "a=sendrecv\r\n"
                        "m=video 51374 RTP/AVP 31\r\n"
                        "a=rtpmap:31 H261/90000\r\n"
                        "a=sendrecv\r\n");
  kz_free(ans);
  check_roundtrip(rfc3264_10_2_offer);
}
END_TEST

START_TEST(rfc3264_10_1_modified_offer_version) {
  /* Bob's later offer (§10.1, second exchange) keeps o= but with the
   * version one higher; bump_version changes nothing else. */
  const char *answer = "v=0\r\n"
                       "o=bob 2890844730 2890844730 IN IP4 host.example.com\r\n"
                       "s=\r\n"
                       "c=IN IP4 host.example.com\r\n"
                       "t=0 0\r\n"
                       "m=audio 49920 RTP/AVP 0\r\n"
                       "a=rtpmap:0 PCMU/8000\r\n";
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_sdp_bump_version(answer, strlen(answer), &b, NULL), 0);
  const char *p = strstr((const char *)b.data, "2890844730 2890844731 IN");
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(b.len, strlen(answer));
  /* "v=0\r\no=bob 2890844730 289084473" is bytes 0..30, the last version
   * digit is byte 31; everything else is unchanged. */
  ck_assert_int_eq(memcmp(b.data, answer, 31), 0);
  ck_assert_int_eq(b.data[31], '1');
  ck_assert_str_eq((const char *)b.data + 32, answer + 32);
  struct kz_sdp *prev = parse_ok(answer), *next = parse_ok((const char *)b.data);
  ck_assert_int_eq(kz_sdp_origin_compare(prev, next), KZ_SDP_ORIGIN_NEWER);
  ck_assert_int_eq(kz_sdp_origin_compare(next, prev), KZ_SDP_ORIGIN_OLDER);
  ck_assert_int_eq(kz_sdp_origin_compare(prev, prev), KZ_SDP_ORIGIN_SAME);
  struct kz_sdp *other = parse_ok(rfc3264_10_1_offer);
  ck_assert_int_eq(kz_sdp_origin_compare(prev, other), KZ_SDP_ORIGIN_OTHER_SESSION);
  kz_deref(prev);
  kz_deref(next);
  kz_deref(other);
  kz_buf_free(&b);
  /* A bare-LF description stays bare-LF. */
  const char *lf = "v=0\no=- 7 18446744073709551614 IN IP4 h\ns=-\nt=0 0\n";
  kz_buf_init(&b);
  ck_assert_int_eq(kz_sdp_bump_version(lf, strlen(lf), &b, NULL), 0);
  ck_assert_str_eq((const char *)b.data, "v=0\no=- 7 18446744073709551615 IN IP4 h\ns=-\nt=0 0\n");
  struct kz_buf b2;
  kz_buf_init(&b2);
  ck_assert_int_eq(kz_sdp_bump_version(b.data, b.len, &b2, NULL), KZ_ERANGE);
  ck_assert_uint_eq(b2.len, 0);
  kz_buf_free(&b);
  kz_buf_free(&b2);
}
END_TEST

/* ---- RFC 4317 style exchanges and intersection cases --------------------- */

START_TEST(rfc4317_audio_video_video_unsupported) {
  /* §2.1 style: audio with several codecs and video we do not do. */
  const char *offer = "v=0\r\n"
                      "o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\r\n"
                      "s=\r\n"
                      "c=IN IP4 host.atlanta.example.com\r\n"
                      "t=0 0\r\n"
                      "m=audio 49170 RTP/AVP 0 8 97\r\n"
                      "a=rtpmap:0 PCMU/8000\r\n"
                      "a=rtpmap:8 PCMA/8000\r\n"
                      "a=rtpmap:97 iLBC/8000\r\n"
                      "m=video 51372 RTP/AVP 31 32\r\n"
                      "a=rtpmap:31 H261/90000\r\n"
                      "a=rtpmap:32 MPV/90000\r\n";
  uint16_t ports[] = {30000, 30002};
  struct kz_sdp_answer_params p = default_params(ports, 2);
  char *ans = answer_of(offer, &p);
  ck_assert_ptr_nonnull(strstr(ans, "m=audio 30000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n"
                                    "a=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n"));
  ck_assert_ptr_nonnull(strstr(ans, "m=video 0 RTP/AVP 31 32\r\n"));
  kz_free(ans);
}
END_TEST

START_TEST(no_common_codec_rejects) {
  const char *offer = HDRT "m=audio 4000 RTP/AVP 18 3\r\n"
                           "m=audio 4002 RTP/AVP 0\r\n";
  uint16_t ports[] = {5000, 5002};
  struct kz_sdp_answer_params p = default_params(ports, 2);
  char *ans = answer_of(offer, &p);
  struct kz_sdp *a = parse_ok(ans);
  ck_assert_uint_eq(a->nmedia, 2);
  ck_assert_uint_eq(a->media[0].port, 0);
  ck_assert_uint_eq(a->media[0].nfmts, 2);
  ck_assert_uint_eq(a->media[1].port, 5002);
  ck_slice(a->media[1].fmts[0], "0");
  kz_deref(a);
  kz_free(ans);
  /* No local port for a stream, an offered port 0 and a non-RTP transport
   * reject too. */
  const char *offer2 = HDRT "m=audio 0 RTP/AVP 0\r\nm=audio 4000 RTP/SAVP 0\r\n"
                            "m=message 4004 TCP/MSRP *\r\nm=audio 4006 RTP/AVP 0\r\n";
  uint16_t ports2[] = {6000, 6002, 6004};
  p = default_params(ports2, 3);
  ans = answer_of(offer2, &p);
  a = parse_ok(ans);
  for (size_t i = 0; i < 4; i++) ck_assert_uint_eq(a->media[i].port, 0);
  ck_slice(a->media[2].fmts[0], "*");
  kz_deref(a);
  kz_free(ans);
}
END_TEST

START_TEST(dynamic_pt_and_telephone_event) {
  /* Offerer's dynamic numbers (111 opus, 101 telephone-event) are kept,
   * names match case-insensitively, fmtp is echoed. */
  const char *offer = HDRT "m=audio 4000 RTP/AVP 111 9 101 13\r\n"
                           "a=rtpmap:111 OPUS/48000/2\r\n"
                           "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
                           "a=rtpmap:101 Telephone-Event/8000\r\n"
                           "a=fmtp:101 0-16\r\n"
                           "a=rtpmap:13 CN/8000\r\n";
  uint16_t ports[] = {7000};
  struct kz_sdp_answer_params p = default_params(ports, 1);
  p.ptime = 20;
  char *ans = answer_of(offer, &p);
  ck_assert_ptr_nonnull(strstr(ans, "m=audio 7000 RTP/AVP 111 9 101\r\n"
                                    "a=rtpmap:111 OPUS/48000/2\r\n"
                                    "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
                                    "a=rtpmap:9 G722/8000\r\n"
                                    "a=rtpmap:101 Telephone-Event/8000\r\n"
                                    "a=fmtp:101 0-16\r\n"
                                    "a=ptime:20\r\n"
                                    "a=sendrecv\r\n"));
  kz_free(ans);
  /* Our own order and our own fmtp when asked. */
  static const struct kz_sdp_codec mine[] = {{NULL, "telephone-event", 8000, 0, "0-15"},
                                             {NULL, "G722", 8000, 0, NULL},
                                             {NULL, "opus", 48000, 2, NULL}};
  p.codecs = mine;
  p.ncodecs = 3;
  p.local_order = true;
  p.ptime = 0;
  ans = answer_of(offer, &p);
  ck_assert_ptr_nonnull(strstr(ans, "m=audio 7000 RTP/AVP 101 9 111\r\n"
                                    "a=rtpmap:101 Telephone-Event/8000\r\n"
                                    "a=fmtp:101 0-15\r\n"));
  kz_free(ans);
  /* opus offered mono does not match our stereo opus; telephone-event alone
   * does not carry a call: the stream is rejected. */
  const char *offer2 = HDRT "m=audio 4000 RTP/AVP 96 101\r\n"
                            "a=rtpmap:96 opus/48000\r\n"
                            "a=rtpmap:101 telephone-event/8000\r\n";
  p = default_params(ports, 1);
  ans = answer_of(offer2, &p);
  ck_assert_ptr_nonnull(strstr(ans, "m=audio 0 RTP/AVP 96 101\r\n"));
  kz_free(ans);
  /* A dynamic type without rtpmap cannot match; telephone-event at 48000
   * is a different codec from ours at 8000. */
  const char *offer3 = HDRT "m=audio 4000 RTP/AVP 98 0 102\r\na=rtpmap:102 telephone-event/48000\r\n";
  ans = answer_of(offer3, &p);
  ck_assert_ptr_nonnull(strstr(ans, "m=audio 7000 RTP/AVP 0\r\n"));
  kz_free(ans);
}
END_TEST

START_TEST(direction_answers) {
  static const struct {
    const char *offer_attr; /* session-level or media-level line(s) */
    bool session;
    enum kz_sdp_dir local;
    const char *want;
  } cases[] = {
      {"", false, KZ_SDP_DIR_UNSET, "a=sendrecv"},
      {"a=sendrecv\r\n", false, KZ_SDP_DIR_UNSET, "a=sendrecv"},
      {"a=sendonly\r\n", false, KZ_SDP_DIR_UNSET, "a=recvonly"},
      {"a=recvonly\r\n", false, KZ_SDP_DIR_UNSET, "a=sendonly"},
      {"a=inactive\r\n", false, KZ_SDP_DIR_UNSET, "a=inactive"},
      {"a=sendonly\r\n", true, KZ_SDP_DIR_UNSET, "a=recvonly"},
      {"", false, KZ_SDP_RECVONLY, "a=recvonly"},
      {"a=recvonly\r\n", false, KZ_SDP_RECVONLY, "a=inactive"},
      {"a=sendonly\r\n", false, KZ_SDP_SENDONLY, "a=inactive"},
      {"c=IN IP4 0.0.0.0\r\n", false, KZ_SDP_DIR_UNSET, "a=recvonly"},
  };
  uint16_t ports[] = {8000};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char offer[512];
    if (cases[i].session)
      snprintf(offer, sizeof offer, HDRT "%sm=audio 4000 RTP/AVP 0\r\n", cases[i].offer_attr);
    else
      snprintf(offer, sizeof offer, HDRT "m=audio 4000 RTP/AVP 0\r\n%s", cases[i].offer_attr);
    struct kz_sdp_answer_params p = default_params(ports, 1);
    p.dir = cases[i].local;
    char *ans = answer_of(offer, &p);
    char want[64];
    snprintf(want, sizeof want, "%s\r\n", cases[i].want);
    size_t al = strlen(ans), wl = strlen(want);
    ck_assert_msg(al >= wl && strcmp(ans + al - wl, want) == 0, "case %zu: answer\n%s", i, ans);
    kz_free(ans);
  }
}
END_TEST

START_TEST(hold_detection) {
  static const struct {
    const char *text;
    bool media0, all;
  } cases[] = {
      {HDRT "m=audio 4000 RTP/AVP 0\r\n", false, false},
      {HDRT "m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n", true, true},
      {HDRT "m=audio 4000 RTP/AVP 0\r\na=inactive\r\n", true, true},
      {HDRT "m=audio 4000 RTP/AVP 0\r\na=recvonly\r\n", false, false},
      {HDR "c=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", true, true},
      {HDRT "a=sendonly\r\nm=audio 4000 RTP/AVP 0\r\n", true, true},
      /* RFC 4317 §3.2 style: audio held, video still flowing. */
      {HDRT "m=audio 4000 RTP/AVP 0\r\na=sendonly\r\nm=video 4002 RTP/AVP 31\r\n", true, false},
      /* A rejected stream does not count. */
      {HDRT "m=audio 4000 RTP/AVP 0\r\na=inactive\r\nm=video 0 RTP/AVP 31\r\n", true, true},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct kz_sdp *s = parse_ok(cases[i].text);
    ck_assert_msg(kz_sdp_media_on_hold(s, 0) == cases[i].media0, "case %zu media", i);
    ck_assert_msg(kz_sdp_on_hold(s) == cases[i].all, "case %zu session", i);
    kz_deref(s);
  }
}
END_TEST

START_TEST(answer_bad_params) {
  struct kz_sdp *offer = parse_ok(rfc3264_10_1_offer);
  uint16_t ports[] = {1, 2, 3};
  struct kz_sdp_answer_params p = default_params(ports, 3);
  struct kz_buf b;
  kz_buf_init(&b);
  p.addr = KZ_SLICE_LIT("host.example.com");
  ck_assert_int_eq(kz_sdp_answer(offer, &p, &b), KZ_EINVAL);
  p = default_params(ports, 3);
  p.username = KZ_SLICE_LIT("a b");
  ck_assert_int_eq(kz_sdp_answer(offer, &p, &b), KZ_EINVAL);
  static const struct kz_sdp_codec evil[] = {{NULL, "PCMU", 8000, 0, "x\r\nm=audio"}};
  p = default_params(ports, 3);
  p.codecs = evil;
  p.ncodecs = 1;
  ck_assert_int_eq(kz_sdp_answer(offer, &p, &b), KZ_EINVAL);
  ck_assert_uint_eq(b.len, 0);
  /* IPv6 answer address. */
  p = default_params(ports, 3);
  p.addr = KZ_SLICE_LIT("2001:db8::5");
  ck_assert_int_eq(kz_sdp_answer(offer, &p, &b), 0);
  ck_assert_ptr_nonnull(strstr((const char *)b.data, "c=IN IP6 2001:db8::5\r\n"));
  kz_buf_free(&b);
  kz_deref(offer);
}
END_TEST

/* ---- relay / NAT rewriting ------------------------------------------------ */

START_TEST(rewrite_relay) {
  const char *in = "v=0\r\n"
                   "o=alice 1 1 IN IP4 10.0.0.5\r\n"
                   "s=call\r\n"
                   "c=IN IP4 10.0.0.5\r\n"
                   "t=0 0\r\n"
                   "m=audio 49170 RTP/AVP 0 101\r\n"
                   "a=rtpmap:101 telephone-event/8000\r\n"
                   "a=rtcp:49171 IN IP4 10.0.0.5\r\n"
                   "m=video 0 RTP/AVP 31\r\n"
                   "c=IN IP4 10.0.0.5\r\n"
                   "m=video 51372/2 RTP/AVP 31\r\n"
                   "c=IN IP4 224.2.1.1/127\r\n"
                   "a=rtcp:51999\r\n";
  uint16_t ports[] = {20000, 20002, 20004};
  struct kz_sdp_relay r = {.addr = KZ_SLICE_LIT("203.0.113.7"), .ports = ports, .nports = 3};
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_sdp_rewrite(in, strlen(in), &r, &b, NULL), 0);
  ck_assert_str_eq((const char *)b.data, "v=0\r\n"
                                         "o=alice 1 1 IN IP4 10.0.0.5\r\n"
                                         "s=call\r\n"
                                         "c=IN IP4 203.0.113.7\r\n"
                                         "t=0 0\r\n"
                                         "m=audio 20000 RTP/AVP 0 101\r\n"
                                         "a=rtpmap:101 telephone-event/8000\r\n"
                                         "a=rtcp:20001 IN IP4 203.0.113.7\r\n"
                                         "m=video 0 RTP/AVP 31\r\n"
                                         "c=IN IP4 10.0.0.5\r\n"
                                         "m=video 20004/2 RTP/AVP 31\r\n"
                                         "c=IN IP4 203.0.113.7\r\n"
                                         "a=rtcp:20005\r\n");
  kz_buf_free(&b);
  /* IPv6 relay, o= too, explicit RTCP ports, bare LF kept, stream 2 kept. */
  const char *lf = "v=0\no=- 1 1 IN IP4 10.0.0.5\ns=-\nt=0 0\n"
                   "m=audio 4000 RTP/AVP 0\nc=IN IP4 10.0.0.5\na=rtcp:4001\n"
                   "m=audio 4010 RTP/AVP 0\nc=IN IP4 10.0.0.6\na=rtcp:4011\n";
  uint16_t rtcp[] = {9999};
  r = (struct kz_sdp_relay){.addr = KZ_SLICE_LIT("2001:db8::7"), .ports = ports, .nports = 1,
                            .rtcp_ports = rtcp, .origin = true};
  kz_buf_init(&b);
  ck_assert_int_eq(kz_sdp_rewrite(lf, strlen(lf), &r, &b, NULL), 0);
  ck_assert_str_eq((const char *)b.data,
                   "v=0\no=- 1 1 IN IP6 2001:db8::7\ns=-\nt=0 0\n"
                   "m=audio 20000 RTP/AVP 0\nc=IN IP6 2001:db8::7\na=rtcp:9999\n"
                   "m=audio 4010 RTP/AVP 0\nc=IN IP6 2001:db8::7\na=rtcp:4011\n");
  kz_buf_free(&b);
  /* Bad input is reported, not rewritten. */
  struct kz_sdp_error err;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_sdp_rewrite("v=0\r\nx", 6, &r, &b, &err), KZ_EPROTO);
  ck_assert_str_eq(err.reason, "line 2: not a <type>=<value> line");
  r.addr = KZ_SLICE_LIT("relay.example.com");
  ck_assert_int_eq(kz_sdp_rewrite(in, strlen(in), &r, &b, NULL), KZ_EINVAL);
  ck_assert_uint_eq(b.len, 0);
  kz_buf_free(&b);
}
END_TEST

START_TEST(rewrite_rfc5118_bodies) {
  const char *body;
  uint8_t *msg = sip_body("corpora/rfc5118/mult-ip-in-sdp.dat", &body);
  if (!msg) return;
  uint16_t ports[] = {30000, 30002};
  struct kz_sdp_relay r = {.addr = KZ_SLICE_LIT("198.51.100.1"), .ports = ports, .nports = 2};
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_sdp_rewrite(body, strlen(body), &r, &b, NULL), 0);
  struct kz_sdp *s = parse_ok((const char *)b.data);
  ck_assert_uint_eq(s->media[0].port, 30000);
  ck_assert_uint_eq(s->media[1].port, 30002);
  ck_slice(s->media[1].conns[0].addrtype, "IP4");
  ck_slice(s->media[1].conns[0].addr, "198.51.100.1");
  ck_slice(s->origin.addr.host, "host.example.com");
  kz_deref(s);
  kz_buf_free(&b);
  free(msg);
}
END_TEST

/* ---- allocation failures --------------------------------------------------- */

/* Runs op with allocation k failing, for every k until it succeeds: each
 * failure must be KZ_ENOMEM with nothing leaked. */
static void sweep(const char *what, int (*op)(struct kz_buf *)) {
  for (int64_t k = 0;; k++) {
    ck_assert_msg(k < 1000, "%s: never succeeded", what);
    int64_t live = kz_mem_live_blocks();
    struct kz_buf b;
    kz_buf_init(&b);
    kz_mem_fail_after(k);
    int rc = op(&b);
    kz_mem_fail_after(-1);
    if (rc == 0) {
      ck_assert_uint_gt(b.len, 0);
      kz_buf_free(&b);
      ck_assert_int_eq(kz_mem_live_blocks(), live);
      return;
    }
    ck_assert_msg(rc == KZ_ENOMEM, "%s k=%lld: %s", what, (long long)k, kz_err_name(rc));
    kz_buf_free(&b);
    ck_assert_msg(kz_mem_live_blocks() == live, "%s k=%lld leaked", what, (long long)k);
  }
}

static int op_parse_print(struct kz_buf *b) {
  struct kz_sdp *s = NULL;
  int rc = kz_sdp_parse(&s, rfc4566_example, strlen(rfc4566_example), NULL, NULL);
  if (rc) return rc;
  rc = kz_sdp_print(s, b);
  kz_deref(s);
  return rc;
}

static int op_answer(struct kz_buf *b) {
  struct kz_sdp *s = NULL;
  int rc = kz_sdp_parse(&s, rfc3264_10_2_offer, strlen(rfc3264_10_2_offer), NULL, NULL);
  if (rc) return rc;
  uint16_t ports[] = {1000, 1002};
  struct kz_sdp_answer_params p = default_params(ports, 2);
  rc = kz_sdp_answer(s, &p, b);
  kz_deref(s);
  return rc;
}

static int op_rewrite(struct kz_buf *b) {
  uint16_t ports[] = {1000, 1002};
  struct kz_sdp_relay r = {.addr = KZ_SLICE_LIT("192.0.2.9"), .ports = ports, .nports = 2};
  return kz_sdp_rewrite(rfc3264_10_2_offer, strlen(rfc3264_10_2_offer), &r, b, NULL);
}

static int op_bump(struct kz_buf *b) {
  return kz_sdp_bump_version(rfc3264_10_2_offer, strlen(rfc3264_10_2_offer), b, NULL);
}

START_TEST(allocation_failure_sweep) {
  sweep("parse+print", op_parse_print);
  sweep("answer", op_answer);
  sweep("rewrite", op_rewrite);
  sweep("bump", op_bump);
}
END_TEST

START_TEST(roundtrip_vectors) {
  check_roundtrip(rfc4566_example);
  check_roundtrip(rfc3264_10_1_offer);
  check_roundtrip(HDRT "m=audio 4000 RTP/AVP 0\r\na=rtcp:4001 IN IP6 ::1\r\na=fmtp:0\r\n");
  check_roundtrip("v=0\no=- 1 2 ATM NSAP 47.0005.80.ffe100\ns=-\nc=ATM NSAP 47.0005\nt=0 0\n"
                  "m=application 9 udp wb\n");
  /* A hand-built description prints too (t= defaulted). */
  struct kz_sdp_media m = {.type = KZ_SLICE_LIT("audio"), .port = 1234,
                           .proto = KZ_SLICE_LIT("RTP/AVP"), .fmts = (struct kz_slice[]){KZ_SLICE_LIT("0")},
                           .nfmts = 1};
  struct kz_sdp s = {.origin = {.username = KZ_SLICE_LIT("-"), .sess_id = KZ_SLICE_LIT("5"),
                                .sess_version = 6,
                                .addr = {.nettype = KZ_SLICE_LIT("IN"), .addrtype = KZ_SLICE_LIT("IP4"),
                                         .addr = KZ_SLICE_LIT("192.0.2.1")}},
                     .name = KZ_SLICE_LIT("-"),
                     .has_conn = true,
                     .conn = {.nettype = KZ_SLICE_LIT("IN"), .addrtype = KZ_SLICE_LIT("IP4"),
                              .addr = KZ_SLICE_LIT("192.0.2.1")},
                     .media = &m,
                     .nmedia = 1};
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_sdp_print(&s, &b), 0);
  ck_assert_str_eq((const char *)b.data, "v=0\r\no=- 5 6 IN IP4 192.0.2.1\r\ns=-\r\n"
                                         "c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 1234 RTP/AVP 0\r\n");
  kz_buf_free(&b);
}
END_TEST

static Suite *sdp_suite(void) {
  Suite *s = suite_create("kz_sdp");
  tcase_add_test(kz_tcase(s, "rfc4566_example", 10), rfc4566_example_parses);
  tcase_add_test(kz_tcase(s, "print_identity", 10), print_canonical_is_identity);
  tcase_add_test(kz_tcase(s, "bare_lf", 10), bare_lf_and_spacing);
  tcase_add_test(kz_tcase(s, "time_repeat_zone", 10), time_repeat_zone_key_bandwidth);
  tcase_add_test(kz_tcase(s, "rfc5118_ipv6", 10), rfc5118_ipv6_in_sdp);
  tcase_add_test(kz_tcase(s, "rfc5118_mult_ip", 10), rfc5118_mult_ip_in_sdp);
  tcase_add_test(kz_tcase(s, "rfc5118_v4_mapped", 10), rfc5118_ipv4_mapped);
  tcase_add_test(kz_tcase(s, "malformed", 10), malformed_reasons);
  tcase_add_test(kz_tcase(s, "address_forms", 10), address_forms);
  tcase_add_test(kz_tcase(s, "limits", 10), limits);
  tcase_add_test(kz_tcase(s, "prefixes", 10), every_prefix_is_handled);
  tcase_add_test(kz_tcase(s, "rfc3264_10_1", 10), rfc3264_10_1_basic_exchange);
  tcase_add_test(kz_tcase(s, "rfc3264_10_2", 10), rfc3264_10_2_one_of_n_codecs);
  tcase_add_test(kz_tcase(s, "rfc3264_version", 10), rfc3264_10_1_modified_offer_version);
  tcase_add_test(kz_tcase(s, "rfc4317_av", 10), rfc4317_audio_video_video_unsupported);
  tcase_add_test(kz_tcase(s, "no_common_codec", 10), no_common_codec_rejects);
  tcase_add_test(kz_tcase(s, "dynamic_pt", 10), dynamic_pt_and_telephone_event);
  tcase_add_test(kz_tcase(s, "direction", 10), direction_answers);
  tcase_add_test(kz_tcase(s, "hold", 10), hold_detection);
  tcase_add_test(kz_tcase(s, "answer_bad_params", 10), answer_bad_params);
  tcase_add_test(kz_tcase(s, "rewrite", 10), rewrite_relay);
  tcase_add_test(kz_tcase(s, "rewrite_rfc5118", 10), rewrite_rfc5118_bodies);
  tcase_add_test(kz_tcase(s, "alloc_sweep", 30), allocation_failure_sweep);
  tcase_add_test(kz_tcase(s, "roundtrip", 10), roundtrip_vectors);
  return s;
}

int main(void) { return kz_run_suite(sdp_suite()); }
