/* kz/sdp.h — SDP (RFC 8866/4566) parse and print, RFC 3264 offer/answer, and media-relay rewriting. */
#ifndef KZ_SDP_H
#define KZ_SDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/buf.h"

/* ---- Limits and errors -------------------------------------------------- */

#define KZ_SDP_DEFAULT_MAX_LINES 1024
#define KZ_SDP_DEFAULT_MAX_MEDIA 32

/* Bounds a parse puts on untrusted input; a zero field takes the default. */
struct kz_sdp_limits {
  size_t max_lines; /* non-empty lines, all sections together */
  size_t max_media; /* m= sections */
};

/* Why a parse failed: the 1-based line number (0 when the failure is not
 * tied to a line) and a reason that starts with "line N: " and can go into
 * a SIP 488/400 reason phrase or a log line. */
struct kz_sdp_error {
  unsigned line;
  char reason[128];
};

/* ---- The parsed description ---------------------------------------------- */

/* Media direction (RFC 3264 §5.1).  UNSET means no direction attribute
 * at this level; the effective default is sendrecv. */
enum kz_sdp_dir {
  KZ_SDP_DIR_UNSET = 0,
  KZ_SDP_SENDRECV,
  KZ_SDP_SENDONLY,
  KZ_SDP_RECVONLY,
  KZ_SDP_INACTIVE,
};

/* Address families recognised in "IN IP4" / "IN IP6". */
enum kz_sdp_family {
  KZ_SDP_ADDR_OTHER = 0, /* another nettype/addrtype */
  KZ_SDP_ADDR_IP4 = 4,
  KZ_SDP_ADDR_IP6 = 6,
};

/* A c= line, the address part of o=, or the optional address of a=rtcp. */
struct kz_sdp_conn {
  struct kz_slice nettype;  /* "IN" */
  struct kz_slice addrtype; /* "IP4", "IP6" */
  struct kz_slice addr;     /* the whole connection-address, with any /ttl/count */
  struct kz_slice host;     /* addr without /ttl and /count */
  uint32_t ttl;             /* IP4 multicast TTL; 0 when absent */
  uint32_t count;           /* number of addresses after '/'; 0 when absent */
  enum kz_sdp_family family;
  bool literal;             /* host is an IP literal and ip[] holds it */
  uint8_t ip[16];           /* network order; 4 bytes used for IP4 */
};

/* o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address> */
struct kz_sdp_origin {
  struct kz_slice username;
  struct kz_slice sess_id; /* digits, kept as text (some stacks exceed 64 bits) */
  uint64_t sess_version;
  struct kz_sdp_conn addr;
};

/* b=<bwtype>:<bandwidth> */
struct kz_sdp_bw {
  struct kz_slice type;
  uint64_t value;
};

/* t=<start> <stop> and the r= lines that follow it (kept as text). */
struct kz_sdp_time {
  uint64_t start;
  uint64_t stop;
  struct kz_slice *repeats;
  size_t nrepeats;
};

/* a=<name>[:<value>] */
struct kz_sdp_attr {
  struct kz_slice name;
  struct kz_slice value;
  bool has_value;
};

/* a=rtpmap:<pt> <encoding>/<clock>[/<channels>] */
struct kz_sdp_rtpmap {
  uint8_t pt;
  struct kz_slice encoding;
  uint32_t clock;
  uint32_t channels; /* 0 when not given (means 1 for audio) */
};

/* a=fmtp:<format> <parameters> */
struct kz_sdp_fmtp {
  struct kz_slice fmt;
  struct kz_slice params;
};

/* a=rtcp:<port> [<nettype> <addrtype> <address>] (RFC 3605) */
struct kz_sdp_rtcp {
  uint16_t port;
  bool has_addr;
  struct kz_sdp_conn addr;
};

/* One m= section.  The derived views (rtpmaps, fmtps, dir, ptime, rtcp)
 * interpret a= lines that are also in attrs; the printer prints attrs. */
struct kz_sdp_media {
  struct kz_slice type; /* "audio", "video", ... */
  uint16_t port;
  uint32_t nports; /* the "/<count>" of m=; 0 when absent */
  struct kz_slice proto;
  struct kz_slice *fmts;
  size_t nfmts;
  bool has_info;
  struct kz_slice info;
  struct kz_sdp_conn *conns;
  size_t nconns;
  struct kz_sdp_bw *bws;
  size_t nbws;
  bool has_key;
  struct kz_slice key;
  struct kz_sdp_attr *attrs;
  size_t nattrs;
  struct kz_sdp_rtpmap *rtpmaps;
  size_t nrtpmaps;
  struct kz_sdp_fmtp *fmtps;
  size_t nfmtps;
  enum kz_sdp_dir dir;
  uint32_t ptime; /* a=ptime in ms; 0 when absent */
  bool has_rtcp;
  struct kz_sdp_rtcp rtcp;
  unsigned line; /* line number of the m= line */
};

/* A whole session description.  Slices point into the parsed text, which
 * the caller keeps alive as long as the structure.  A caller may also build
 * one by hand (its own arrays and strings) to print it. */
struct kz_sdp {
  struct kz_sdp_origin origin;
  struct kz_slice name; /* s= */
  bool has_info;
  struct kz_slice info; /* i= */
  bool has_uri;
  struct kz_slice uri; /* u= */
  struct kz_slice *emails;
  size_t nemails;
  struct kz_slice *phones;
  size_t nphones;
  bool has_conn;
  struct kz_sdp_conn conn;
  struct kz_sdp_bw *bws;
  size_t nbws;
  struct kz_sdp_time *times;
  size_t ntimes;
  bool has_zone;
  struct kz_slice zone; /* z= */
  bool has_key;
  struct kz_slice key; /* k= */
  struct kz_sdp_attr *attrs;
  size_t nattrs;
  enum kz_sdp_dir dir; /* session-level direction attribute */
  struct kz_sdp_media *media;
  size_t nmedia;
};

/* ---- Parse and print ----------------------------------------------------- */

/* Parses one session description of `len` bytes (CRLF or bare LF line
 * ends; trailing empty lines are ignored).  Lines must come in RFC 8866
 * order: v= o= s= i= u= e= p= c= b= (t= r=)+ z= k= a=, then per m= section
 * i= c= b= k= a=.  Every m= section with a non-zero port needs a c= of its
 * own or a session-level one.  On success *out is one allocation to release
 * with kz_deref(); its slices point into `text`, which must outlive it.
 * `lim` may be NULL for the defaults; `err` may be NULL.
 * Returns 0, KZ_EINVAL (NULL out/text), KZ_EPROTO (malformed; err says
 * which line and why), KZ_EMSGSIZE (a limit was exceeded) or KZ_ENOMEM. */
int kz_sdp_parse(struct kz_sdp **out, const void *text, size_t len,
                 const struct kz_sdp_limits *lim, struct kz_sdp_error *err);

/* Appends `sdp` to `out` as text in canonical order with CRLF line ends
 * and single spaces between fields.  A description without t= gets
 * "t=0 0".  Printing a parsed description and parsing the result gives
 * the same structure.  Returns 0, KZ_EINVAL (NULL argument) or KZ_ENOMEM
 * (out keeps what was appended before the failure). */
int kz_sdp_print(const struct kz_sdp *sdp, struct kz_buf *out);

/* ---- Lookups ------------------------------------------------------------- */

/* The a=rtpmap of payload type `pt` in `m`, or NULL. */
const struct kz_sdp_rtpmap *kz_sdp_media_rtpmap(const struct kz_sdp_media *m, unsigned pt);

/* The a=fmtp parameters of format `fmt` (e.g. "101") in `m`; sets *params
 * and returns true when there is one. */
bool kz_sdp_media_fmtp(const struct kz_sdp_media *m, struct kz_slice fmt, struct kz_slice *params);

/* Resolves payload type `pt` of `m` to a codec: its a=rtpmap, else the
 * RFC 3551 static assignment (0 PCMU/8000, 8 PCMA/8000, 9 G722/8000...).
 * Returns 0 and fills *out, or KZ_ENOENT (dynamic type without rtpmap or
 * unassigned static type). */
int kz_sdp_media_codec(const struct kz_sdp_media *m, unsigned pt, struct kz_sdp_rtpmap *out);

/* Effective direction of media `i`: its own attribute, else the session's,
 * else sendrecv.  Never KZ_SDP_DIR_UNSET. */
enum kz_sdp_dir kz_sdp_media_dir(const struct kz_sdp *sdp, size_t i);

/* Effective connection of media `i`: its first c=, else the session c=,
 * else NULL. */
const struct kz_sdp_conn *kz_sdp_media_conn(const struct kz_sdp *sdp, size_t i);

/* True when media `i` is put on hold by its sender: effective direction
 * sendonly or inactive, or the RFC 2543 style c= 0.0.0.0. */
bool kz_sdp_media_on_hold(const struct kz_sdp *sdp, size_t i);

/* True when the description holds the call: it has at least one stream
 * with a non-zero port and every such stream is on hold. */
bool kz_sdp_on_hold(const struct kz_sdp *sdp);

/* Text name of a direction ("sendrecv"...; "" for UNSET). */
const char *kz_sdp_dir_name(enum kz_sdp_dir d);

/* ---- Offer/answer (RFC 3264) --------------------------------------------- */

/* A codec we support.  media NULL means "audio"; channels 0 means 1. */
struct kz_sdp_codec {
  const char *media;
  const char *name; /* encoding name, compared case-insensitively */
  uint32_t clock;
  uint32_t channels;
  const char *fmtp; /* parameters we answer with; NULL echoes the offer's */
};

/* What the answerer brings to an answer. */
struct kz_sdp_answer_params {
  const struct kz_sdp_codec *codecs; /* most preferred first */
  size_t ncodecs;
  bool local_order;      /* list formats in our order, not the offer's (RFC 3264 §6.1 recommends the offer's) */
  struct kz_slice username; /* o= username; "-" when empty */
  uint64_t sess_id;
  uint64_t sess_version;
  struct kz_slice addr; /* our media address (IPv6 when it holds ':'), for o= and c= */
  const uint16_t *ports; /* our RTP port for offered stream i */
  size_t nports;         /* a stream i >= nports or with port 0 is rejected */
  enum kz_sdp_dir dir;   /* what we are willing to do; UNSET = sendrecv */
  uint32_t ptime;        /* a=ptime for accepted audio streams; 0 for none */
};

/* Builds the answer to `offer` (RFC 3264 §6) and appends it to `out` as
 * text (parse it with kz_sdp_parse for the structure).  One m= line per
 * offered stream, in order.  An RTP/AVP or RTP/AVPF stream is accepted
 * with the codecs both sides support, matched by encoding name
 * (case-insensitive), clock rate and channels, keeping the offer's
 * payload type numbers (static and dynamic); telephone-event, CN and
 * other auxiliary formats are kept when both support them but never
 * accept a stream alone.  Each accepted stream gets an a=rtpmap per
 * format, the fmtp we configured or else the offer's, and the direction
 * that mirrors the offer (sendonly -> recvonly, recvonly -> sendonly,
 * inactive stays inactive; an offered c=0.0.0.0 counts as not receiving)
 * narrowed by params->dir.  Streams that cannot be accepted get port 0.
 * t= is copied from the offer.  On failure `out` is left as it was.
 * Returns 0, KZ_EINVAL (NULL argument, addr not an IP literal, a codec
 * name or fmtp that would break the line) or KZ_ENOMEM. */
int kz_sdp_answer(const struct kz_sdp *offer, const struct kz_sdp_answer_params *params,
                  struct kz_buf *out);

/* Relation of a new description to the previous one from the same peer
 * (RFC 3264 §8: same o= except a version one higher when it changed). */
enum kz_sdp_origin_change {
  KZ_SDP_ORIGIN_SAME = 0,      /* same session, same version: nothing changed */
  KZ_SDP_ORIGIN_NEWER,         /* same session, higher version: a modification */
  KZ_SDP_ORIGIN_OLDER,         /* same session, lower version: stale or broken */
  KZ_SDP_ORIGIN_OTHER_SESSION, /* username, id or address differ */
};

enum kz_sdp_origin_change kz_sdp_origin_compare(const struct kz_sdp *prev, const struct kz_sdp *next);

/* Copies the description `text` to `out` with the o= session version one
 * higher and every other byte unchanged: what we send when we re-offer a
 * modified session.  Returns 0, KZ_EINVAL, KZ_EPROTO (text does not parse;
 * err says why), KZ_ERANGE (version already 2^64-1) or KZ_ENOMEM. */
int kz_sdp_bump_version(const void *text, size_t len, struct kz_buf *out, struct kz_sdp_error *err);

/* ---- Media relay / NAT rewriting ----------------------------------------- */

/* Where a relay wants the media sent instead. */
struct kz_sdp_relay {
  struct kz_slice addr;        /* IP literal; IPv6 when it holds ':' */
  const uint16_t *ports;       /* new RTP port of stream i; 0 keeps it */
  size_t nports;               /* streams i >= nports keep their port */
  const uint16_t *rtcp_ports;  /* new a=rtcp port of stream i (0 keeps); NULL: new RTP port + 1 */
  bool origin;                 /* also rewrite the o= address */
};

/* Copies `text` to `out` with the session-level and per-media c=
 * addresses replaced by relay->addr (the address type follows it; any
 * /ttl is dropped), the m= ports of active streams (port != 0) replaced,
 * a=rtcp ports (and their addresses, when given) rewritten to match, and
 * optionally the o= address; every other byte, line ends included, is
 * left as it was.  Rejected streams (port 0) are left untouched.
 * Returns 0, KZ_EINVAL (NULL argument or empty relay address), KZ_EPROTO /
 * KZ_EMSGSIZE (text does not parse; err says why) or KZ_ENOMEM; on
 * failure `out` is left as it was. */
int kz_sdp_rewrite(const void *text, size_t len, const struct kz_sdp_relay *relay,
                   struct kz_buf *out, struct kz_sdp_error *err);

#endif /* KZ_SDP_H */
