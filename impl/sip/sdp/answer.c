/* answer.c — RFC 3264 answer generation: per-stream codec intersection, direction, rejection. */
#include <inttypes.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sdp.h"
#include "sdp_int.h"

/* Formats that ride along with a real codec but never carry a call alone. */
static bool is_aux(struct kz_slice name) {
  static const char *const aux[] = {"telephone-event", "CN", "red", "ulpfec", "flexfec", "rtx"};
  for (size_t i = 0; i < sizeof(aux) / sizeof(aux[0]); i++)
    if (kz_slice_caseeq_cstr(name, aux[i])) return true;
  return false;
}

static bool codec_match(const struct kz_sdp_codec *lc, struct kz_slice mtype,
                        const struct kz_sdp_rtpmap *r) {
  if (!kz_slice_caseeq_cstr(mtype, lc->media ? lc->media : "audio")) return false;
  if (!kz_slice_caseeq_cstr(r->encoding, lc->name) || r->clock != lc->clock) return false;
  uint32_t a = lc->channels ? lc->channels : 1, b = r->channels ? r->channels : 1;
  return a == b;
}

enum { DIR_SEND = 1, DIR_RECV = 2 };

static unsigned dir_bits(enum kz_sdp_dir d) {
  switch (d) {
  case KZ_SDP_SENDONLY: return DIR_SEND;
  case KZ_SDP_RECVONLY: return DIR_RECV;
  case KZ_SDP_INACTIVE: return 0;
  default: return DIR_SEND | DIR_RECV;
  }
}

static enum kz_sdp_dir bits_dir(unsigned b) {
  switch (b) {
  case DIR_SEND: return KZ_SDP_SENDONLY;
  case DIR_RECV: return KZ_SDP_RECVONLY;
  case 0: return KZ_SDP_INACTIVE;
  default: return KZ_SDP_SENDRECV;
  }
}

/* Text we put on a line must not break out of it. */
static bool safe_text(const char *s, bool allow_space) {
  for (; s && *s; s++) {
    if (*s == '\r' || *s == '\n' || (!allow_space && *s == ' ')) return false;
  }
  return true;
}

static bool valid_addr(struct kz_slice a) {
  uint8_t ip[16];
  return kz_sdp_parse_ip4(a, ip) || kz_sdp_parse_ip6(a, ip);
}

struct pick {
  size_t fmt;   /* index into the offer's formats */
  size_t local; /* index into params->codecs */
  struct kz_sdp_rtpmap codec;
};

static bool pt_of(struct kz_slice fmt, unsigned *pt) {
  uint64_t v;
  if (kz_slice_to_u64(fmt, 127, &v)) return false;
  *pt = (unsigned)v;
  return true;
}

/* Chooses the formats of one stream; returns how many were picked. */
static size_t choose(const struct kz_sdp_media *m, const struct kz_sdp_answer_params *p,
                     struct pick *picks, bool *used) {
  size_t n = 0;
  size_t outer = p->local_order ? p->ncodecs : m->nfmts;
  size_t inner = p->local_order ? m->nfmts : p->ncodecs;
  for (size_t a = 0; a < outer; a++) {
    for (size_t b = 0; b < inner; b++) {
      size_t f = p->local_order ? b : a, k = p->local_order ? a : b;
      if (used[k]) continue;
      unsigned pt;
      struct kz_sdp_rtpmap r;
      if (!pt_of(m->fmts[f], &pt) || kz_sdp_media_codec(m, pt, &r)) continue;
      bool dup = false;
      for (size_t j = 0; j < n; j++) dup = dup || picks[j].codec.pt == pt;
      if (dup || !codec_match(&p->codecs[k], m->type, &r)) continue;
      used[k] = true;
      picks[n++] = (struct pick){f, k, r};
      break;
    }
  }
  return n;
}

static int rejected(struct kz_buf *o, const struct kz_sdp_media *m) {
  int rc = kz_buf_append(o, "m=", 2);
  if (!rc) rc = kz_buf_append_slice(o, m->type);
  if (!rc) rc = kz_buf_append(o, " 0 ", 3);
  if (!rc) rc = kz_buf_append_slice(o, m->proto);
  for (size_t i = 0; !rc && i < m->nfmts; i++) {
    rc = kz_buf_append_byte(o, ' ');
    if (!rc) rc = kz_buf_append_slice(o, m->fmts[i]);
  }
  if (!rc) rc = kz_buf_append(o, "\r\n", 2);
  return rc;
}

static int accepted(struct kz_buf *o, const struct kz_sdp *offer, size_t i,
                    const struct kz_sdp_answer_params *p, const struct pick *picks, size_t n) {
  const struct kz_sdp_media *m = &offer->media[i];
  int rc = kz_buf_append(o, "m=", 2);
  if (!rc) rc = kz_buf_append_slice(o, m->type);
  if (!rc) rc = kz_buf_printf(o, " %u ", (unsigned)p->ports[i]);
  if (!rc) rc = kz_buf_append_slice(o, m->proto);
  for (size_t j = 0; !rc && j < n; j++) rc = kz_buf_printf(o, " %u", (unsigned)picks[j].codec.pt);
  if (!rc) rc = kz_buf_append(o, "\r\n", 2);
  for (size_t j = 0; !rc && j < n; j++) {
    const struct kz_sdp_rtpmap *r = &picks[j].codec;
    rc = kz_buf_printf(o, "a=rtpmap:%u ", (unsigned)r->pt);
    if (!rc) rc = kz_buf_append_slice(o, r->encoding);
    if (!rc) rc = kz_buf_printf(o, "/%" PRIu32, r->clock);
    if (!rc && r->channels) rc = kz_buf_printf(o, "/%" PRIu32, r->channels);
    if (!rc) rc = kz_buf_append(o, "\r\n", 2);
    const char *lf = p->codecs[picks[j].local].fmtp;
    struct kz_slice of;
    if (!rc && lf) {
      rc = kz_buf_printf(o, "a=fmtp:%u %s\r\n", (unsigned)r->pt, lf);
    } else if (!rc && kz_sdp_media_fmtp(m, m->fmts[picks[j].fmt], &of)) {
      rc = kz_buf_printf(o, "a=fmtp:%u ", (unsigned)r->pt);
      if (!rc) rc = kz_buf_append_slice(o, of);
      if (!rc) rc = kz_buf_append(o, "\r\n", 2);
    }
  }
  if (!rc && p->ptime && kz_slice_caseeq_cstr(m->type, "audio"))
    rc = kz_buf_printf(o, "a=ptime:%" PRIu32 "\r\n", p->ptime);
  /* Mirror the offer: what it sends we receive and vice versa.  An old
   * style hold (c=0.0.0.0) means the offerer does not want to receive. */
  unsigned off = dir_bits(kz_sdp_media_dir(offer, i));
  const struct kz_sdp_conn *c = kz_sdp_media_conn(offer, i);
  static const uint8_t zero[4] = {0, 0, 0, 0};
  if (c && c->family == KZ_SDP_ADDR_IP4 && c->literal && memcmp(c->ip, zero, 4) == 0)
    off &= ~(unsigned)DIR_RECV;
  unsigned mirrored = ((off & DIR_SEND) ? DIR_RECV : 0) | ((off & DIR_RECV) ? DIR_SEND : 0);
  enum kz_sdp_dir d = bits_dir(mirrored & dir_bits(p->dir));
  if (!rc) rc = kz_buf_printf(o, "a=%s\r\n", kz_sdp_dir_name(d));
  return rc;
}

static bool answerable_proto(struct kz_slice proto) {
  return kz_slice_caseeq_cstr(proto, "RTP/AVP") || kz_slice_caseeq_cstr(proto, "RTP/AVPF");
}

int kz_sdp_answer(const struct kz_sdp *offer, const struct kz_sdp_answer_params *p,
                  struct kz_buf *out) {
  if (!offer || !p || !out || (p->ncodecs && !p->codecs) || (p->nports && !p->ports))
    return KZ_EINVAL;
  if (!valid_addr(p->addr)) return KZ_EINVAL;
  for (size_t k = 0; k < p->ncodecs; k++) {
    const struct kz_sdp_codec *lc = &p->codecs[k];
    if (!lc->name || !*lc->name || !safe_text(lc->name, false) || strchr(lc->name, '/') ||
        !safe_text(lc->fmtp, true) || !safe_text(lc->media, false) || lc->clock == 0)
      return KZ_EINVAL;
  }
  for (size_t i = 0; i < p->username.len; i++) {
    char ch = p->username.p[i];
    if (ch == ' ' || ch == '\r' || ch == '\n' || ch == 0) return KZ_EINVAL;
  }
  bool v6 = kz_slice_find_char(p->addr, ':') >= 0;
  const char *at = v6 ? "IP6" : "IP4";

  size_t maxf = 1;
  for (size_t i = 0; i < offer->nmedia; i++)
    if (offer->media[i].nfmts > maxf) maxf = offer->media[i].nfmts;
  struct pick *picks = kz_calloc(maxf, sizeof(*picks));
  bool *used = kz_calloc(p->ncodecs ? p->ncodecs : 1, sizeof(*used));
  int rc = (picks && used) ? 0 : KZ_ENOMEM;
  size_t len0 = out->len;

  if (!rc) rc = kz_buf_append(out, "v=0\r\no=", 7);
  if (!rc) rc = kz_buf_append_slice(out, p->username.len ? p->username : KZ_SLICE_LIT("-"));
  if (!rc)
    rc = kz_buf_printf(out, " %" PRIu64 " %" PRIu64 " IN %s ", p->sess_id, p->sess_version, at);
  if (!rc) rc = kz_buf_append_slice(out, p->addr);
  if (!rc) rc = kz_buf_printf(out, "\r\ns=-\r\nc=IN %s ", at);
  if (!rc) rc = kz_buf_append_slice(out, p->addr);
  if (!rc) rc = kz_buf_append(out, "\r\n", 2);
  /* RFC 3264 §6: the answer's t= equals the offer's. */
  if (!rc && offer->ntimes == 0) rc = kz_buf_append(out, "t=0 0\r\n", 7);
  for (size_t i = 0; !rc && i < offer->ntimes; i++) {
    const struct kz_sdp_time *t = &offer->times[i];
    rc = kz_buf_printf(out, "t=%" PRIu64 " %" PRIu64 "\r\n", t->start, t->stop);
    for (size_t k = 0; !rc && k < t->nrepeats; k++) {
      rc = kz_buf_append(out, "r=", 2);
      if (!rc) rc = kz_buf_append_slice(out, t->repeats[k]);
      if (!rc) rc = kz_buf_append(out, "\r\n", 2);
    }
  }
  for (size_t i = 0; !rc && i < offer->nmedia; i++) {
    const struct kz_sdp_media *m = &offer->media[i];
    size_t n = 0;
    bool ok = m->port != 0 && i < p->nports && p->ports[i] != 0 && answerable_proto(m->proto) &&
              m->nfmts > 0;
    if (ok) {
      memset(used, 0, (p->ncodecs ? p->ncodecs : 1) * sizeof(*used));
      n = choose(m, p, picks, used);
      bool real = false;
      for (size_t j = 0; j < n; j++) real = real || !is_aux(picks[j].codec.encoding);
      ok = real;
    }
    rc = ok ? accepted(out, offer, i, p, picks, n) : rejected(out, m);
  }
  kz_free(picks);
  kz_free(used);
  if (rc) {
    /* No half-written answer is left behind. */
    kz_buf_truncate(out, len0);
  }
  return rc;
}
