/* parse.c — SDP text to struct kz_sdp: line splitting, field order, field syntax and the derived a= views. */
#include <assert.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kz/env.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sdp.h"
#include "sdp_int.h"

/* ---- Small shared helpers -------------------------------------------------- */

bool kz_sdp_next_token(struct kz_slice *cur, struct kz_slice *tok) {
  const char *p = cur->p;
  size_t n = cur->len;
  while (n && *p == ' ') {
    p++;
    n--;
  }
  if (!n) {
    *cur = (struct kz_slice){p, 0};
    return false;
  }
  size_t k = 0;
  while (k < n && p[k] != ' ') k++;
  *tok = (struct kz_slice){p, k};
  *cur = (struct kz_slice){p + k, n - k};
  return true;
}

bool kz_sdp_proto_is_rtp(struct kz_slice proto) {
  if (proto.len >= 4 && kz_slice_caseeq_cstr(kz_slice_sub(proto, 0, 4), "RTP/")) return true;
  for (size_t i = 0; i + 5 <= proto.len; i++) {
    if (kz_slice_caseeq_cstr(kz_slice_sub(proto, i, 5), "/RTP/")) return true;
  }
  return false;
}

struct static_pt {
  uint8_t pt;
  const char *name;
  uint32_t clock;
  uint32_t channels;
};

/* RFC 3551 §6, tables 4 and 5. */
static const struct static_pt kz_sdp_static_table[] = {
    {0, "PCMU", 8000, 0},     {3, "GSM", 8000, 0},      {4, "G723", 8000, 0},
    {5, "DVI4", 8000, 0},     {6, "DVI4", 16000, 0},    {7, "LPC", 8000, 0},
    {8, "PCMA", 8000, 0},     {9, "G722", 8000, 0},     {10, "L16", 44100, 2},
    {11, "L16", 44100, 0},    {12, "QCELP", 8000, 0},   {13, "CN", 8000, 0},
    {14, "MPA", 90000, 0},    {15, "G728", 8000, 0},    {16, "DVI4", 11025, 0},
    {17, "DVI4", 22050, 0},   {18, "G729", 8000, 0},    {25, "CelB", 90000, 0},
    {26, "JPEG", 90000, 0},   {28, "nv", 90000, 0},     {31, "H261", 90000, 0},
    {32, "MPV", 90000, 0},    {33, "MP2T", 90000, 0},   {34, "H263", 90000, 0},
};

bool kz_sdp_static_pt(unsigned pt, struct kz_sdp_rtpmap *out) {
  for (size_t i = 0; i < sizeof(kz_sdp_static_table) / sizeof(kz_sdp_static_table[0]); i++) {
    const struct static_pt *s = &kz_sdp_static_table[i];
    if (s->pt == pt) {
      out->pt = (uint8_t)pt;
      out->encoding = kz_slice_cstr(s->name);
      out->clock = s->clock;
      out->channels = s->channels;
      return true;
    }
  }
  return false;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* RFC 4566's IP4-address, leading zeros allowed as in SIP. */
bool kz_sdp_parse_ip4(struct kz_slice s, uint8_t out[4]) { return kz_ip4_parse(s.p, s.len, KZ_IP4_LEADING_ZEROS, out); }

bool kz_sdp_parse_ip6(struct kz_slice s, uint8_t out[16]) {
  uint16_t w[8];
  int n = 0, gap = -1;
  size_t i = 0;
  if (s.len < 2 || s.len > 45) return false;
  if (s.p[0] == ':') {
    if (s.p[1] != ':') return false;
    gap = 0;
    i = 2;
  }
  while (i < s.len) {
    if (n == 8) return false;
    size_t j = i;
    while (j < s.len && s.p[j] != ':') j++;
    struct kz_slice seg = {s.p + i, j - i};
    if (kz_slice_find_char(seg, '.') >= 0) {
      /* An embedded IPv4 tail takes the last two groups. */
      uint8_t v4[4];
      if (j != s.len || n > 6 || !kz_sdp_parse_ip4(seg, v4)) return false;
      w[n++] = (uint16_t)(v4[0] << 8 | v4[1]);
      w[n++] = (uint16_t)(v4[2] << 8 | v4[3]);
      i = j;
      break;
    }
    if (seg.len == 0 || seg.len > 4) return false;
    unsigned v = 0;
    for (size_t k = 0; k < seg.len; k++) {
      int h = hexval(seg.p[k]);
      if (h < 0) return false;
      v = v * 16 + (unsigned)h;
    }
    w[n++] = (uint16_t)v;
    i = j;
    if (i == s.len) break;
    i++; /* the ':' */
    if (i == s.len) return false;
    if (s.p[i] == ':') {
      if (gap >= 0) return false;
      gap = n;
      i++;
    }
  }
  if (gap < 0 && n != 8) return false;
  if (gap >= 0 && n > 7) return false;
  memset(out, 0, 16);
  int tail = gap >= 0 ? n - gap : 0;
  int head = gap >= 0 ? gap : n;
  for (int k = 0; k < head; k++) {
    out[2 * k] = (uint8_t)(w[k] >> 8);
    out[2 * k + 1] = (uint8_t)w[k];
  }
  for (int k = 0; k < tail; k++) {
    int dst = 8 - tail + k;
    out[2 * dst] = (uint8_t)(w[head + k] >> 8);
    out[2 * dst + 1] = (uint8_t)w[head + k];
  }
  return true;
}

/* ---- Parse context ---------------------------------------------------------- */

/* Every element type lives in one pool per type.  The parse runs twice:
 * the first run only validates and counts (takes go to a scratch slot),
 * the second fills one exact-size allocation.  Elements of one owner are
 * taken consecutively, so each owner's array is a run of its pool. */
union any_elem {
  struct kz_sdp_media m;
  struct kz_sdp_attr a;
  struct kz_sdp_conn c;
  struct kz_sdp_bw b;
  struct kz_slice s;
  struct kz_sdp_rtpmap r;
  struct kz_sdp_fmtp f;
  struct kz_sdp_time t;
};

struct pool {
  char *base; /* NULL while counting */
  size_t elem;
  size_t used;
  size_t cap;
  union any_elem scratch;
};

enum { P_MEDIA, P_ATTR, P_CONN, P_BW, P_SLICE, P_RTPMAP, P_FMTP, P_TIME, P_COUNT };

struct pctx {
  struct kz_sdp_limits lim;
  struct kz_sdp_error *err;
  struct kz_sdp *sdp;
  struct kz_sdp_media *m;    /* current m= section, NULL in the session part */
  struct kz_sdp_time *t;     /* last t= */
  struct pool pools[P_COUNT];
  int rank;                  /* order rank of the previous line */
  char last;                 /* type letter of the previous line */
  bool seen_o, seen_s, seen_t;
};

static void *take(struct pctx *c, int which) {
  struct pool *p = &c->pools[which];
  void *e;
  if (!p->base) {
    e = &p->scratch;
  } else {
    assert(p->used < p->cap);
    e = p->base + p->used * p->elem;
  }
  p->used++;
  memset(e, 0, p->elem);
  return e;
}

static int fail(struct pctx *c, unsigned line, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct pctx *c, unsigned line, int code, const char *fmt, ...) {
  if (c->err) {
    c->err->line = line;
    int n = snprintf(c->err->reason, sizeof(c->err->reason), "line %u: ", line);
    if (n < 0) n = 0;
    if ((size_t)n < sizeof(c->err->reason)) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(c->err->reason + n, sizeof(c->err->reason) - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return code;
}

static bool all_digits(struct kz_slice s) {
  if (!s.len) return false;
  for (size_t i = 0; i < s.len; i++)
    if (!is_digit(s.p[i])) return false;
  return true;
}

/* Splits a value into at most `max` tokens; returns how many there are
 * (max + 1 when there are more). */
static size_t split(struct kz_slice v, struct kz_slice *toks, size_t max) {
  size_t n = 0;
  struct kz_slice t;
  while (kz_sdp_next_token(&v, &t)) {
    if (n == max) return max + 1;
    toks[n++] = t;
  }
  return n;
}

static bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c)) return true;
  return c && strchr("!#$%&'*+-.^_`{|}~", c) != NULL;
}

static bool is_token(struct kz_slice s) {
  if (!s.len) return false;
  for (size_t i = 0; i < s.len; i++)
    if (!is_token_char(s.p[i])) return false;
  return true;
}

static bool is_hostname(struct kz_slice s) {
  if (!s.len) return false;
  for (size_t i = 0; i < s.len; i++) {
    char ch = s.p[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch) || ch == '-' ||
          ch == '.' || ch == '_'))
      return false;
  }
  return true;
}

static bool all_digits_dots(struct kz_slice s) {
  for (size_t i = 0; i < s.len; i++)
    if (!is_digit(s.p[i]) && s.p[i] != '.') return false;
  return true;
}

/* Parses "<nettype> <addrtype> <address>" given as three tokens.  `what`
 * names the field in errors; unicast_only refuses "/ttl" and "/count". */
static int parse_conn_toks(struct pctx *c, unsigned no, const char *what, struct kz_slice net,
                           struct kz_slice at, struct kz_slice addr, bool unicast_only,
                           struct kz_sdp_conn *out) {
  memset(out, 0, sizeof(*out));
  out->nettype = net;
  out->addrtype = at;
  out->addr = addr;
  if (!is_token(net) || !is_token(at))
    return fail(c, no, KZ_EPROTO, "%s network or address type is not a token", what);
  long slash = kz_slice_find_char(addr, '/');
  out->host = slash < 0 ? addr : kz_slice_sub(addr, 0, (size_t)slash);
  if (!kz_slice_caseeq_cstr(net, "IN")) {
    if (!out->host.len) return fail(c, no, KZ_EPROTO, "%s address is empty", what);
    return 0;
  }
  bool v6;
  if (kz_slice_caseeq_cstr(at, "IP4")) {
    v6 = false;
    out->family = KZ_SDP_ADDR_IP4;
  } else if (kz_slice_caseeq_cstr(at, "IP6")) {
    v6 = true;
    out->family = KZ_SDP_ADDR_IP6;
  } else {
    /* Another address type under IN: keep it opaque. */
    if (!out->host.len) return fail(c, no, KZ_EPROTO, "%s address is empty", what);
    return 0;
  }
  struct kz_slice h = out->host;
  if (!v6 && h.len && all_digits_dots(h)) {
    if (!kz_sdp_parse_ip4(h, out->ip)) return fail(c, no, KZ_EPROTO, "%s bad IPv4 address", what);
    out->literal = true;
  } else if (v6 && kz_slice_find_char(h, ':') >= 0) {
    if (!kz_sdp_parse_ip6(h, out->ip)) return fail(c, no, KZ_EPROTO, "%s bad IPv6 address", what);
    out->literal = true;
  } else if (!is_hostname(h)) {
    return fail(c, no, KZ_EPROTO, "%s bad %s address", what, v6 ? "IPv6" : "IPv4");
  }
  if (slash < 0) return 0;
  if (unicast_only) return fail(c, no, KZ_EPROTO, "%s address must be unicast", what);
  struct kz_slice rest = kz_slice_sub(addr, (size_t)slash + 1, addr.len);
  long slash2 = kz_slice_find_char(rest, '/');
  struct kz_slice first = slash2 < 0 ? rest : kz_slice_sub(rest, 0, (size_t)slash2);
  uint64_t v;
  if (!v6) {
    if (kz_slice_to_u64(first, 255, &v)) return fail(c, no, KZ_EPROTO, "%s bad multicast TTL", what);
    out->ttl = (uint32_t)v;
    if (slash2 < 0) return 0;
    first = kz_slice_sub(rest, (size_t)slash2 + 1, rest.len);
  } else if (slash2 >= 0) {
    return fail(c, no, KZ_EPROTO, "%s IPv6 address takes no TTL", what);
  }
  if (kz_slice_to_u64(first, UINT32_MAX, &v) || v == 0)
    return fail(c, no, KZ_EPROTO, "%s bad address count", what);
  out->count = (uint32_t)v;
  return 0;
}

static int parse_conn(struct pctx *c, unsigned no, struct kz_slice val, struct kz_sdp_conn *out) {
  struct kz_slice t[3];
  if (split(val, t, 3) != 3)
    return fail(c, no, KZ_EPROTO, "c= needs <nettype> <addrtype> <address>");
  return parse_conn_toks(c, no, "c=", t[0], t[1], t[2], false, out);
}

static int parse_origin(struct pctx *c, unsigned no, struct kz_slice val) {
  struct kz_slice t[6];
  if (split(val, t, 6) != 6)
    return fail(c, no, KZ_EPROTO,
                "o= needs <username> <sess-id> <sess-version> <nettype> <addrtype> <address>");
  struct kz_sdp_origin *o = &c->sdp->origin;
  o->username = t[0];
  if (!all_digits(t[1])) return fail(c, no, KZ_EPROTO, "o= session id not a number");
  o->sess_id = t[1];
  int rc = kz_slice_to_u64(t[2], UINT64_MAX, &o->sess_version);
  if (rc == KZ_ERANGE) return fail(c, no, KZ_EPROTO, "o= session version out of range");
  if (rc) return fail(c, no, KZ_EPROTO, "o= session version not a number");
  return parse_conn_toks(c, no, "o=", t[3], t[4], t[5], true, &o->addr);
}

static int parse_bw(struct pctx *c, unsigned no, struct kz_slice val, struct kz_sdp_bw **arr,
                    size_t *n) {
  long colon = kz_slice_find_char(val, ':');
  if (colon <= 0) return fail(c, no, KZ_EPROTO, "b= malformed, expected <bwtype>:<bandwidth>");
  struct kz_sdp_bw *b = take(c, P_BW);
  if (*n == 0) *arr = b;
  (*n)++;
  b->type = kz_slice_sub(val, 0, (size_t)colon);
  if (!is_token(b->type)) return fail(c, no, KZ_EPROTO, "b= bandwidth type is not a token");
  if (kz_slice_to_u64(kz_slice_sub(val, (size_t)colon + 1, val.len), UINT64_MAX, &b->value))
    return fail(c, no, KZ_EPROTO, "b= bandwidth not a number");
  return 0;
}

/* typed-time = 1*DIGIT [d|h|m|s]; `neg` allows a leading '-'. */
static bool is_typed_time(struct kz_slice s, bool neg) {
  if (neg && s.len && s.p[0] == '-') s = kz_slice_sub(s, 1, s.len);
  if (s.len && s.p[s.len - 1] && strchr("dhms", s.p[s.len - 1])) s.len--;
  return all_digits(s);
}

static int parse_time(struct pctx *c, unsigned no, struct kz_slice val) {
  struct kz_slice t[2];
  if (split(val, t, 2) != 2) return fail(c, no, KZ_EPROTO, "t= needs <start-time> <stop-time>");
  struct kz_sdp_time *tm = take(c, P_TIME);
  if (c->sdp->ntimes == 0) c->sdp->times = tm;
  c->sdp->ntimes++;
  c->t = tm;
  if (kz_slice_to_u64(t[0], UINT64_MAX, &tm->start))
    return fail(c, no, KZ_EPROTO, "t= start time not a number");
  if (kz_slice_to_u64(t[1], UINT64_MAX, &tm->stop))
    return fail(c, no, KZ_EPROTO, "t= stop time not a number");
  return 0;
}

static int parse_repeat(struct pctx *c, unsigned no, struct kz_slice val) {
  struct kz_slice cur = val, tok;
  size_t n = 0;
  while (kz_sdp_next_token(&cur, &tok)) {
    if (!is_typed_time(tok, false)) return fail(c, no, KZ_EPROTO, "r= field is not a time");
    n++;
  }
  if (n < 3) return fail(c, no, KZ_EPROTO, "r= needs <interval> <duration> <offsets>");
  struct kz_slice *s = take(c, P_SLICE);
  if (c->t->nrepeats == 0) c->t->repeats = s;
  c->t->nrepeats++;
  *s = val;
  return 0;
}

static int parse_zone(struct pctx *c, unsigned no, struct kz_slice val) {
  struct kz_slice cur = val, tok;
  size_t n = 0;
  while (kz_sdp_next_token(&cur, &tok)) {
    bool ok = (n % 2 == 0) ? all_digits(tok) : is_typed_time(tok, true);
    if (!ok) return fail(c, no, KZ_EPROTO, "z= field is not a time");
    n++;
  }
  if (n == 0 || n % 2) return fail(c, no, KZ_EPROTO, "z= needs <adjustment-time> <offset> pairs");
  c->sdp->has_zone = true;
  c->sdp->zone = val;
  return 0;
}

static int set_dir(struct pctx *c, unsigned no, enum kz_sdp_dir *dir, enum kz_sdp_dir d,
                   const struct kz_sdp_attr *a) {
  if (a->has_value) return fail(c, no, KZ_EPROTO, "a=%s takes no value", kz_sdp_dir_name(d));
  if (*dir != KZ_SDP_DIR_UNSET) return fail(c, no, KZ_EPROTO, "second direction attribute");
  *dir = d;
  return 0;
}

static int parse_rtpmap(struct pctx *c, unsigned no, struct kz_slice val) {
  struct kz_slice t[2];
  if (split(val, t, 2) != 2)
    return fail(c, no, KZ_EPROTO, "a=rtpmap needs <payload type> <encoding>/<clock rate>");
  uint64_t v;
  if (kz_slice_to_u64(t[0], 127, &v))
    return fail(c, no, KZ_EPROTO, "a=rtpmap payload type not a number 0-127");
  struct kz_sdp_rtpmap *r = take(c, P_RTPMAP);
  if (c->m->nrtpmaps == 0) c->m->rtpmaps = r;
  c->m->nrtpmaps++;
  r->pt = (uint8_t)v;
  struct kz_slice rest = t[1];
  long s1 = kz_slice_find_char(rest, '/');
  if (s1 <= 0) return fail(c, no, KZ_EPROTO, "a=rtpmap needs <encoding>/<clock rate>");
  r->encoding = kz_slice_sub(rest, 0, (size_t)s1);
  rest = kz_slice_sub(rest, (size_t)s1 + 1, rest.len);
  long s2 = kz_slice_find_char(rest, '/');
  struct kz_slice clock = s2 < 0 ? rest : kz_slice_sub(rest, 0, (size_t)s2);
  if (kz_slice_to_u64(clock, UINT32_MAX, &v) || v == 0)
    return fail(c, no, KZ_EPROTO, "a=rtpmap clock rate not a number");
  r->clock = (uint32_t)v;
  if (s2 >= 0) {
    if (kz_slice_to_u64(kz_slice_sub(rest, (size_t)s2 + 1, rest.len), UINT32_MAX, &v) || v == 0)
      return fail(c, no, KZ_EPROTO, "a=rtpmap channels not a number");
    r->channels = (uint32_t)v;
  }
  return 0;
}

static int parse_fmtp(struct pctx *c, unsigned no, struct kz_slice val) {
  struct kz_slice cur = val, fmt;
  if (!kz_sdp_next_token(&cur, &fmt)) return fail(c, no, KZ_EPROTO, "a=fmtp has no format");
  struct kz_sdp_fmtp *f = take(c, P_FMTP);
  if (c->m->nfmtps == 0) c->m->fmtps = f;
  c->m->nfmtps++;
  f->fmt = fmt;
  while (cur.len && cur.p[0] == ' ') cur = kz_slice_sub(cur, 1, cur.len);
  f->params = cur;
  return 0;
}

static int parse_ptime(struct pctx *c, unsigned no, struct kz_slice val) {
  long dot = kz_slice_find_char(val, '.');
  struct kz_slice ip = dot < 0 ? val : kz_slice_sub(val, 0, (size_t)dot);
  uint64_t v;
  if (kz_slice_to_u64(ip, UINT32_MAX, &v) ||
      (dot >= 0 && !all_digits(kz_slice_sub(val, (size_t)dot + 1, val.len))))
    return fail(c, no, KZ_EPROTO, "a=ptime not a number");
  c->m->ptime = (uint32_t)v;
  return 0;
}

static int parse_rtcp(struct pctx *c, unsigned no, struct kz_slice val) {
  struct kz_slice t[4];
  size_t n = split(val, t, 4);
  if (n != 1 && n != 4)
    return fail(c, no, KZ_EPROTO, "a=rtcp needs <port> [<nettype> <addrtype> <address>]");
  uint64_t v;
  if (kz_slice_to_u64(t[0], 65535, &v)) return fail(c, no, KZ_EPROTO, "a=rtcp port not a number");
  c->m->has_rtcp = true;
  c->m->rtcp.port = (uint16_t)v;
  if (n == 4) {
    c->m->rtcp.has_addr = true;
    return parse_conn_toks(c, no, "a=rtcp", t[1], t[2], t[3], false, &c->m->rtcp.addr);
  }
  return 0;
}

static int parse_attr(struct pctx *c, unsigned no, struct kz_slice val) {
  struct kz_sdp_attr *a = take(c, P_ATTR);
  struct kz_sdp_attr **arr = c->m ? &c->m->attrs : &c->sdp->attrs;
  size_t *n = c->m ? &c->m->nattrs : &c->sdp->nattrs;
  if (*n == 0) *arr = a;
  (*n)++;
  long colon = kz_slice_find_char(val, ':');
  if (colon < 0) {
    a->name = val;
  } else {
    a->name = kz_slice_sub(val, 0, (size_t)colon);
    a->value = kz_slice_sub(val, (size_t)colon + 1, val.len);
    a->has_value = true;
  }
  if (!is_token(a->name)) return fail(c, no, KZ_EPROTO, "a= attribute name empty or invalid");
  enum kz_sdp_dir *dir = c->m ? &c->m->dir : &c->sdp->dir;
  static const enum kz_sdp_dir dirs[] = {KZ_SDP_SENDRECV, KZ_SDP_SENDONLY, KZ_SDP_RECVONLY,
                                         KZ_SDP_INACTIVE};
  for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
    if (kz_slice_caseeq_cstr(a->name, kz_sdp_dir_name(dirs[i])))
      return set_dir(c, no, dir, dirs[i], a);
  }
  if (!c->m) return 0;
  if (kz_slice_caseeq_cstr(a->name, "rtpmap")) return parse_rtpmap(c, no, a->value);
  if (kz_slice_caseeq_cstr(a->name, "fmtp")) return parse_fmtp(c, no, a->value);
  if (kz_slice_caseeq_cstr(a->name, "ptime")) return parse_ptime(c, no, a->value);
  if (kz_slice_caseeq_cstr(a->name, "rtcp")) return parse_rtcp(c, no, a->value);
  return 0;
}

/* A finished m= section with an active port needs an address. */
static int close_media(struct pctx *c) {
  struct kz_sdp_media *m = c->m;
  if (m && m->port != 0 && m->nconns == 0 && !c->sdp->has_conn)
    return fail(c, m->line, KZ_EPROTO, "m= section has no c= line and there is no session-level c=");
  return 0;
}

static int parse_media(struct pctx *c, unsigned no, struct kz_slice val) {
  int rc = close_media(c);
  if (rc) return rc;
  if (c->sdp->nmedia >= c->lim.max_media)
    return fail(c, no, KZ_EMSGSIZE, "more than %zu m= sections", c->lim.max_media);
  struct kz_sdp_media *m = take(c, P_MEDIA);
  if (c->sdp->nmedia == 0) c->sdp->media = m;
  c->sdp->nmedia++;
  c->m = m;
  m->line = no;
  struct kz_slice cur = val, port;
  if (!kz_sdp_next_token(&cur, &m->type) || !kz_sdp_next_token(&cur, &port) ||
      !kz_sdp_next_token(&cur, &m->proto))
    return fail(c, no, KZ_EPROTO, "m= needs <media> <port> <proto> <fmt>...");
  if (!is_token(m->type)) return fail(c, no, KZ_EPROTO, "m= media type is not a token");
  long slash = kz_slice_find_char(port, '/');
  struct kz_slice pnum = slash < 0 ? port : kz_slice_sub(port, 0, (size_t)slash);
  uint64_t v;
  rc = kz_slice_to_u64(pnum, 65535, &v);
  if (rc == KZ_ERANGE) return fail(c, no, KZ_EPROTO, "m= port out of range");
  if (rc) return fail(c, no, KZ_EPROTO, "m= port not a number");
  m->port = (uint16_t)v;
  if (slash >= 0) {
    if (kz_slice_to_u64(kz_slice_sub(port, (size_t)slash + 1, port.len), UINT32_MAX, &v) || v == 0)
      return fail(c, no, KZ_EPROTO, "m= port count not a number");
    m->nports = (uint32_t)v;
  }
  for (size_t i = 0; i < m->proto.len; i++) {
    if (!is_token_char(m->proto.p[i]) && m->proto.p[i] != '/')
      return fail(c, no, KZ_EPROTO, "m= transport protocol is invalid");
  }
  bool rtp = kz_sdp_proto_is_rtp(m->proto);
  struct kz_slice fmt;
  while (kz_sdp_next_token(&cur, &fmt)) {
    if (rtp && kz_slice_to_u64(fmt, 127, &v))
      return fail(c, no, KZ_EPROTO, "m= payload type %.*s is not a number 0-127",
                  (int)(fmt.len > 16 ? 16 : fmt.len), fmt.p);
    struct kz_slice *s = take(c, P_SLICE);
    if (m->nfmts == 0) m->fmts = s;
    m->nfmts++;
    *s = fmt;
  }
  if (m->nfmts == 0) return fail(c, no, KZ_EPROTO, "m= has no formats");
  return 0;
}

/* Order ranks: a line may follow lines of lower or (if repeatable) equal
 * rank.  Session part 0..12, media part 21..25. */
static int session_rank(char t) {
  switch (t) {
  case 'v': return 0;
  case 'o': return 1;
  case 's': return 2;
  case 'i': return 3;
  case 'u': return 4;
  case 'e': return 5;
  case 'p': return 6;
  case 'c': return 7;
  case 'b': return 8;
  case 't': case 'r': return 9;
  case 'z': return 10;
  case 'k': return 11;
  case 'a': return 12;
  default: return -1;
  }
}

static int media_rank(char t) {
  switch (t) {
  case 'i': return 21;
  case 'c': return 22;
  case 'b': return 23;
  case 'k': return 24;
  case 'a': return 25;
  default: return -1;
  }
}

static bool repeatable(char t, bool media) {
  return t && strchr(media ? "cba" : "epbtra", t) != NULL;
}

static int handle_line(struct pctx *c, unsigned no, char type, struct kz_slice val) {
  if (no == 1 && type != 'v') return fail(c, no, KZ_EPROTO, "must start with v=");
  if (!strchr("vosiuepcbtrzkam", type))
    return fail(c, no, KZ_EPROTO, "unknown line type '%c='", type);
  if (type == 'm') {
    if (!c->seen_t) return fail(c, no, KZ_EPROTO, "missing t= line before m=");
    c->rank = 20;
    c->last = 'm';
    return parse_media(c, no, val);
  }
  int r = c->m ? media_rank(type) : session_rank(type);
  if (r < 0) return fail(c, no, KZ_EPROTO, "%c= not allowed in a media section", type);
  if (r < c->rank) return fail(c, no, KZ_EPROTO, "%c= out of order (after %c=)", type, c->last);
  if (r == c->rank && !repeatable(type, c->m != NULL))
    return fail(c, no, KZ_EPROTO, "duplicate %c= line", type);
  if (type == 'r' && c->rank < 9) return fail(c, no, KZ_EPROTO, "r= without a preceding t=");
  if (r > 1 && !c->seen_o) return fail(c, no, KZ_EPROTO, "missing o= line");
  if (r > 2 && !c->seen_s) return fail(c, no, KZ_EPROTO, "missing s= line");
  if (r > 9 && !c->seen_t) return fail(c, no, KZ_EPROTO, "missing t= line");
  c->rank = r;
  c->last = type;
  struct kz_sdp *s = c->sdp;
  struct kz_sdp_media *m = c->m;
  switch (type) {
  case 'v':
    if (!kz_slice_eq_cstr(val, "0")) return fail(c, no, KZ_EPROTO, "v= must be 0");
    return 0;
  case 'o':
    c->seen_o = true;
    return parse_origin(c, no, val);
  case 's':
    c->seen_s = true;
    s->name = val;
    return 0;
  case 'i':
    if (m) {
      m->has_info = true;
      m->info = val;
    } else {
      s->has_info = true;
      s->info = val;
    }
    return 0;
  case 'u':
    s->has_uri = true;
    s->uri = val;
    return 0;
  case 'e':
  case 'p': {
    struct kz_slice *e = take(c, P_SLICE);
    struct kz_slice **arr = type == 'e' ? &s->emails : &s->phones;
    size_t *n = type == 'e' ? &s->nemails : &s->nphones;
    if (*n == 0) *arr = e;
    (*n)++;
    *e = val;
    if (!val.len) return fail(c, no, KZ_EPROTO, "%c= is empty", type);
    return 0;
  }
  case 'c':
    if (m) {
      struct kz_sdp_conn *cn = take(c, P_CONN);
      if (m->nconns == 0) m->conns = cn;
      m->nconns++;
      return parse_conn(c, no, val, cn);
    }
    s->has_conn = true;
    return parse_conn(c, no, val, &s->conn);
  case 'b':
    return m ? parse_bw(c, no, val, &m->bws, &m->nbws) : parse_bw(c, no, val, &s->bws, &s->nbws);
  case 't':
    c->seen_t = true;
    return parse_time(c, no, val);
  case 'r':
    return parse_repeat(c, no, val);
  case 'z':
    return parse_zone(c, no, val);
  case 'k':
    if (m) {
      m->has_key = true;
      m->key = val;
    } else {
      s->has_key = true;
      s->key = val;
    }
    return 0;
  case 'a':
    return parse_attr(c, no, val);
  default:
    return fail(c, no, KZ_EPROTO, "unknown line type '%c='", type);
  }
}

/* One run over the text: validates everything; fills when pools are set. */
static int run(struct pctx *c, const char *text, size_t len) {
  size_t pos = 0;
  unsigned no = 0;
  size_t lines = 0;
  c->rank = -1;
  c->last = 0;
  c->m = NULL;
  c->t = NULL;
  c->seen_o = c->seen_s = c->seen_t = false;
  while (pos < len) {
    const char *p = text + pos;
    const char *nl = memchr(p, '\n', len - pos);
    size_t raw = nl ? (size_t)(nl - p) : len - pos;
    size_t n = raw;
    if (n && p[n - 1] == '\r') n--;
    pos += raw + (nl ? 1 : 0);
    no++;
    if (n == 0) {
      /* Only line ends may follow an empty line. */
      for (size_t k = pos; k < len; k++) {
        if (text[k] != '\r' && text[k] != '\n')
          return fail(c, no, KZ_EPROTO, "empty line inside the description");
      }
      break;
    }
    if (++lines > c->lim.max_lines)
      return fail(c, no, KZ_EMSGSIZE, "more than %zu lines", c->lim.max_lines);
    if (memchr(p, '\r', n)) return fail(c, no, KZ_EPROTO, "stray CR inside the line");
    if (memchr(p, '\0', n)) return fail(c, no, KZ_EPROTO, "NUL byte inside the line");
    if (n < 2 || p[1] != '=' || p[0] < 'a' || p[0] > 'z')
      return fail(c, no, KZ_EPROTO, "not a <type>=<value> line");
    int rc = handle_line(c, no, p[0], (struct kz_slice){p + 2, n - 2});
    if (rc) return rc;
  }
  if (lines == 0) return fail(c, 1, KZ_EPROTO, "empty session description");
  unsigned end = no + 1;
  if (!c->seen_o) return fail(c, end, KZ_EPROTO, "missing o= line");
  if (!c->seen_s) return fail(c, end, KZ_EPROTO, "missing s= line");
  if (!c->seen_t) return fail(c, end, KZ_EPROTO, "missing t= line");
  return close_media(c);
}

int kz_sdp_parse(struct kz_sdp **out, const void *text, size_t len,
                 const struct kz_sdp_limits *lim, struct kz_sdp_error *err) {
  if (err) {
    err->line = 0;
    err->reason[0] = 0;
  }
  if (!out || (!text && len)) return KZ_EINVAL;
  /* About 3 KiB of context: on the stack, so a parse allocates once. */
  struct pctx ctx;
  memset(&ctx, 0, sizeof(ctx));
  struct pctx *c = &ctx;
  c->err = err;
  c->lim.max_lines = lim && lim->max_lines ? lim->max_lines : KZ_SDP_DEFAULT_MAX_LINES;
  c->lim.max_media = lim && lim->max_media ? lim->max_media : KZ_SDP_DEFAULT_MAX_MEDIA;
  static const size_t sizes[P_COUNT] = {
      [P_MEDIA] = sizeof(struct kz_sdp_media), [P_ATTR] = sizeof(struct kz_sdp_attr),
      [P_CONN] = sizeof(struct kz_sdp_conn),   [P_BW] = sizeof(struct kz_sdp_bw),
      [P_SLICE] = sizeof(struct kz_slice),     [P_RTPMAP] = sizeof(struct kz_sdp_rtpmap),
      [P_FMTP] = sizeof(struct kz_sdp_fmtp),   [P_TIME] = sizeof(struct kz_sdp_time)};
  for (int i = 0; i < P_COUNT; i++) c->pools[i].elem = sizes[i];

  /* Pass 1: validate and count into a scratch description. */
  struct kz_sdp scratch;
  memset(&scratch, 0, sizeof(scratch));
  c->sdp = &scratch;
  int rc = run(c, text, len);
  if (rc) goto out;

  /* One block: the description, then each pool, each aligned. */
  const size_t al = alignof(max_align_t);
  size_t off[P_COUNT];
  size_t total = (sizeof(struct kz_sdp) + al - 1) / al * al;
  for (int i = 0; i < P_COUNT; i++) {
    off[i] = total;
    total += (c->pools[i].used * c->pools[i].elem + al - 1) / al * al;
  }
  char *block = kz_obj_alloc(total, NULL);
  if (!block) {
    rc = KZ_ENOMEM;
    goto out;
  }
  for (int i = 0; i < P_COUNT; i++) {
    c->pools[i].base = block + off[i];
    c->pools[i].cap = c->pools[i].used;
    c->pools[i].used = 0;
  }
  c->sdp = (struct kz_sdp *)(void *)block;
  rc = run(c, text, len);
  /* The first pass accepted the same bytes, so the second cannot fail. */
  assert(rc == 0);
  *out = c->sdp;
out:
  return rc;
}
