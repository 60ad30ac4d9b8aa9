/* sdp.c — lookups over a parsed SDP: codecs, fmtp, effective direction and connection, hold, o= comparison. */
#include <string.h>

#include "kz/error.h"
#include "kz/sdp.h"
#include "sdp_int.h"

const char *kz_sdp_dir_name(enum kz_sdp_dir d) {
  switch (d) {
  case KZ_SDP_SENDRECV: return "sendrecv";
  case KZ_SDP_SENDONLY: return "sendonly";
  case KZ_SDP_RECVONLY: return "recvonly";
  case KZ_SDP_INACTIVE: return "inactive";
  default: return "";
  }
}

const struct kz_sdp_rtpmap *kz_sdp_media_rtpmap(const struct kz_sdp_media *m, unsigned pt) {
  if (!m) return NULL;
  for (size_t i = 0; i < m->nrtpmaps; i++)
    if (m->rtpmaps[i].pt == pt) return &m->rtpmaps[i];
  return NULL;
}

bool kz_sdp_media_fmtp(const struct kz_sdp_media *m, struct kz_slice fmt, struct kz_slice *params) {
  if (!m) return false;
  for (size_t i = 0; i < m->nfmtps; i++) {
    if (kz_slice_eq(m->fmtps[i].fmt, fmt)) {
      if (params) *params = m->fmtps[i].params;
      return true;
    }
  }
  return false;
}

int kz_sdp_media_codec(const struct kz_sdp_media *m, unsigned pt, struct kz_sdp_rtpmap *out) {
  if (!m || !out || pt > 127) return KZ_EINVAL;
  const struct kz_sdp_rtpmap *r = kz_sdp_media_rtpmap(m, pt);
  if (r) {
    *out = *r;
    return 0;
  }
  /* RFC 3551 assigns 0..34 statically; 96..127 need an rtpmap. */
  if (pt < 96 && kz_sdp_static_pt(pt, out)) return 0;
  return KZ_ENOENT;
}

enum kz_sdp_dir kz_sdp_media_dir(const struct kz_sdp *sdp, size_t i) {
  if (sdp && i < sdp->nmedia && sdp->media[i].dir != KZ_SDP_DIR_UNSET) return sdp->media[i].dir;
  if (sdp && sdp->dir != KZ_SDP_DIR_UNSET) return sdp->dir;
  return KZ_SDP_SENDRECV;
}

const struct kz_sdp_conn *kz_sdp_media_conn(const struct kz_sdp *sdp, size_t i) {
  if (!sdp) return NULL;
  if (i < sdp->nmedia && sdp->media[i].nconns) return &sdp->media[i].conns[0];
  return sdp->has_conn ? &sdp->conn : NULL;
}

static bool conn_is_zero_v4(const struct kz_sdp_conn *c) {
  static const uint8_t zero[4] = {0, 0, 0, 0};
  return c && c->family == KZ_SDP_ADDR_IP4 && c->literal && memcmp(c->ip, zero, 4) == 0;
}

bool kz_sdp_media_on_hold(const struct kz_sdp *sdp, size_t i) {
  if (!sdp || i >= sdp->nmedia) return false;
  enum kz_sdp_dir d = kz_sdp_media_dir(sdp, i);
  if (d == KZ_SDP_SENDONLY || d == KZ_SDP_INACTIVE) return true;
  return conn_is_zero_v4(kz_sdp_media_conn(sdp, i));
}

bool kz_sdp_on_hold(const struct kz_sdp *sdp) {
  if (!sdp) return false;
  size_t active = 0;
  for (size_t i = 0; i < sdp->nmedia; i++) {
    if (sdp->media[i].port == 0) continue;
    active++;
    if (!kz_sdp_media_on_hold(sdp, i)) return false;
  }
  return active > 0;
}

enum kz_sdp_origin_change kz_sdp_origin_compare(const struct kz_sdp *prev, const struct kz_sdp *next) {
  const struct kz_sdp_origin *a = &prev->origin, *b = &next->origin;
  /* RFC 8866 §5.2: username, id, nettype, addrtype and address name the session. */
  if (!kz_slice_eq(a->username, b->username) || !kz_slice_eq(a->sess_id, b->sess_id) ||
      !kz_slice_caseeq(a->addr.nettype, b->addr.nettype) ||
      !kz_slice_caseeq(a->addr.addrtype, b->addr.addrtype) || !kz_slice_eq(a->addr.addr, b->addr.addr))
    return KZ_SDP_ORIGIN_OTHER_SESSION;
  if (b->sess_version == a->sess_version) return KZ_SDP_ORIGIN_SAME;
  return b->sess_version > a->sess_version ? KZ_SDP_ORIGIN_NEWER : KZ_SDP_ORIGIN_OLDER;
}
