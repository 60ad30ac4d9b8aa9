/* kz/sip_msg.h — SIP message parser, printer and stream framer (RFC 3261 §7, §18.3, §25), sans-I/O. */
#ifndef KZ_SIP_MSG_H
#define KZ_SIP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/buf.h"

/* Conventions used by every structure below:
 * - A struct kz_slice field is a view into the message bytes.  p == NULL
 *   means "absent"; a present but empty item (";lr" has an empty value)
 *   has p != NULL and len == 0.
 * - Slices of header values are raw: they may contain folding (CRLF
 *   followed by SP/HTAB) which means the same as one SP.  Use
 *   kz_sip_unfold() or the printer to get a single-line form.
 * - Parameter lists (`params`) are the raw text from the first ';'
 *   (included) to the end of the last parameter; read single parameters
 *   with kz_sip_param_get(). */

/* Methods known by name.  Methods are case-sensitive (RFC 3261 §7.1):
 * "invite" is an unknown method, as is "RE%47IST%45R". */
enum kz_sip_method {
  KZ_SIP_METHOD_OTHER = 0,
  KZ_SIP_METHOD_INVITE,
  KZ_SIP_METHOD_ACK,
  KZ_SIP_METHOD_BYE,
  KZ_SIP_METHOD_CANCEL,
  KZ_SIP_METHOD_REGISTER,
  KZ_SIP_METHOD_OPTIONS,
  KZ_SIP_METHOD_INFO,
  KZ_SIP_METHOD_PRACK,
  KZ_SIP_METHOD_UPDATE,
  KZ_SIP_METHOD_SUBSCRIBE,
  KZ_SIP_METHOD_NOTIFY,
  KZ_SIP_METHOD_REFER,
  KZ_SIP_METHOD_MESSAGE,
  KZ_SIP_METHOD_PUBLISH,
  KZ_SIP_METHOD_COUNT
};

/* Headers known by name (long and compact forms map to the same id).
 * Any other header is KZ_SIP_HDR_OTHER and is found by name. */
enum kz_sip_hdr_id {
  KZ_SIP_HDR_OTHER = 0,
  KZ_SIP_HDR_VIA,                 /* v */
  KZ_SIP_HDR_FROM,                /* f */
  KZ_SIP_HDR_TO,                  /* t */
  KZ_SIP_HDR_CALL_ID,             /* i */
  KZ_SIP_HDR_CSEQ,
  KZ_SIP_HDR_CONTACT,             /* m */
  KZ_SIP_HDR_MAX_FORWARDS,
  KZ_SIP_HDR_CONTENT_LENGTH,      /* l */
  KZ_SIP_HDR_CONTENT_TYPE,        /* c */
  KZ_SIP_HDR_CONTENT_ENCODING,    /* e */
  KZ_SIP_HDR_CONTENT_DISPOSITION,
  KZ_SIP_HDR_CONTENT_LANGUAGE,
  KZ_SIP_HDR_ROUTE,
  KZ_SIP_HDR_RECORD_ROUTE,
  KZ_SIP_HDR_PATH,
  KZ_SIP_HDR_EXPIRES,
  KZ_SIP_HDR_MIN_EXPIRES,
  KZ_SIP_HDR_AUTHORIZATION,
  KZ_SIP_HDR_PROXY_AUTHORIZATION,
  KZ_SIP_HDR_WWW_AUTHENTICATE,
  KZ_SIP_HDR_PROXY_AUTHENTICATE,
  KZ_SIP_HDR_AUTHENTICATION_INFO,
  KZ_SIP_HDR_ALLOW,
  KZ_SIP_HDR_ALLOW_EVENTS,        /* u */
  KZ_SIP_HDR_SUPPORTED,           /* k */
  KZ_SIP_HDR_REQUIRE,
  KZ_SIP_HDR_PROXY_REQUIRE,
  KZ_SIP_HDR_UNSUPPORTED,
  KZ_SIP_HDR_USER_AGENT,
  KZ_SIP_HDR_SERVER,
  KZ_SIP_HDR_EVENT,               /* o */
  KZ_SIP_HDR_SUBSCRIPTION_STATE,
  KZ_SIP_HDR_ACCEPT,
  KZ_SIP_HDR_ACCEPT_ENCODING,
  KZ_SIP_HDR_ACCEPT_LANGUAGE,
  KZ_SIP_HDR_DATE,
  KZ_SIP_HDR_RETRY_AFTER,
  KZ_SIP_HDR_TIMESTAMP,
  KZ_SIP_HDR_SUBJECT,             /* s */
  KZ_SIP_HDR_REFER_TO,            /* r */
  KZ_SIP_HDR_REFERRED_BY,         /* b */
  KZ_SIP_HDR_SESSION_EXPIRES,     /* x */
  KZ_SIP_HDR_MIN_SE,
  KZ_SIP_HDR_RSEQ,
  KZ_SIP_HDR_RACK,
  KZ_SIP_HDR_WARNING,
  KZ_SIP_HDR_ORGANIZATION,
  KZ_SIP_HDR_PRIORITY,
  KZ_SIP_HDR_REPLY_TO,
  KZ_SIP_HDR_IN_REPLY_TO,
  KZ_SIP_HDR_CALL_INFO,
  KZ_SIP_HDR_ALERT_INFO,
  KZ_SIP_HDR_ERROR_INFO,
  KZ_SIP_HDR_MIME_VERSION,
  KZ_SIP_HDR_IDENTITY,            /* y */
  KZ_SIP_HDR_IDENTITY_INFO,       /* n */
  KZ_SIP_HDR_ACCEPT_CONTACT,      /* a */
  KZ_SIP_HDR_REJECT_CONTACT,      /* j */
  KZ_SIP_HDR_REQUEST_DISPOSITION, /* d */
  KZ_SIP_HDR_P_ASSERTED_IDENTITY,
  KZ_SIP_HDR_P_PREFERRED_IDENTITY,
  KZ_SIP_HDR_PRIVACY,
  KZ_SIP_HDR_REASON,
  KZ_SIP_HDR_REPLACES,
  KZ_SIP_HDR_SIP_ETAG,
  KZ_SIP_HDR_SIP_IF_MATCH,
  KZ_SIP_HDR_COUNT
};

enum kz_sip_scheme {
  KZ_SIP_SCHEME_OTHER = 0, /* well-formed absoluteURI of another scheme */
  KZ_SIP_SCHEME_SIP,
  KZ_SIP_SCHEME_SIPS,
  KZ_SIP_SCHEME_TEL
};

enum kz_sip_transport {
  KZ_SIP_TRANSPORT_OTHER = 0,
  KZ_SIP_TRANSPORT_UDP,
  KZ_SIP_TRANSPORT_TCP,
  KZ_SIP_TRANSPORT_TLS,
  KZ_SIP_TRANSPORT_SCTP,
  KZ_SIP_TRANSPORT_WS,
  KZ_SIP_TRANSPORT_WSS
};

/* A parsed URI.  For sip/sips: user, password, host, port, params,
 * headers.  For tel: user holds the number, params its parameters.
 * For other schemes only `raw`, `scheme_text` and `opaque` are set. */
struct kz_sip_uri {
  enum kz_sip_scheme scheme;
  struct kz_slice raw;         /* the whole URI, without any <> */
  struct kz_slice scheme_text; /* "sip", "SIPS", "soap.beep"... */
  struct kz_slice opaque;      /* everything after "scheme:" */
  struct kz_slice user;        /* still %-escaped; absent when no '@' */
  struct kz_slice password;    /* absent when no ':' in the userinfo */
  struct kz_slice host;        /* IPv6 references WITHOUT the [] */
  struct kz_slice port_text;   /* absent when no port */
  struct kz_slice params;      /* ";lr;transport=tcp" or absent */
  struct kz_slice headers;     /* after '?', without it; or absent */
  uint16_t port;               /* 0 when absent */
  bool host_ipv6;              /* host was an [IPv6reference] */
};

/* One value of a Via header (a header line may carry several). */
struct kz_sip_via {
  struct kz_slice raw;            /* the value, from "SIP" to the last param */
  struct kz_slice proto_name;     /* "SIP" */
  struct kz_slice proto_version;  /* "2.0" */
  struct kz_slice transport_text; /* "UDP", "UNKNOWN"... */
  enum kz_sip_transport transport;
  struct kz_slice host;           /* sent-by host, IPv6 without [] */
  struct kz_slice port_text;      /* absent when no port */
  uint16_t port;                  /* 0 when absent */
  bool host_ipv6;
  struct kz_slice params;
  struct kz_slice branch, received, maddr, ttl_text; /* absent when missing */
  struct kz_slice rport_text;     /* present-empty for a bare ";rport" */
  int ttl;                        /* -1 when absent */
  int rport;                      /* -1 absent, 0 no value, else the port */
};

/* A name-addr or addr-spec with header parameters (From, To, Contact,
 * Route, Record-Route, Path...). */
struct kz_sip_addr {
  struct kz_slice raw;     /* the whole value */
  struct kz_slice display; /* raw display name: a quoted-string WITH its
                              quotes and escapes, or tokens; or absent */
  struct kz_sip_uri uri;
  bool angle;              /* written as name-addr (<...>) */
  struct kz_slice params;  /* header parameters (not URI ones) */
  struct kz_slice tag;     /* absent when no tag param */
  struct kz_slice expires_text, q_text;
  int64_t expires;         /* -1 absent; clamped to UINT32_MAX */
  int q;                   /* -1 absent, else 0..1000 (q * 1000) */
};

struct kz_sip_cseq {
  uint32_t num;
  enum kz_sip_method method;
  struct kz_slice method_text;
};

/* One header field as it appeared (one line, possibly folded). */
struct kz_sip_hdr {
  enum kz_sip_hdr_id id;
  uint32_t next_same;    /* index+1 of the next header with the same id
                            (id != OTHER), 0 for the last one */
  struct kz_slice name;  /* as written ("v", "cseq", "NewFangledHeader") */
  struct kz_slice value; /* raw, trimmed, may contain folds */
};

/* Why a parse failed: a short English reason fit for a 400 reason phrase
 * or a log line, the response code a UAS would answer (400, 505...) and
 * whether a stream must be closed (framing lost). */
struct kz_sip_perr {
  uint16_t status;
  bool fatal;
  size_t offset; /* byte offset of the problem in the input */
  char reason[112];
};

/* Inline capacities: the message structure holds this many of each
 * without further allocation; more grow one array each (doubling). */
#define KZ_SIP_INLINE_HDRS 24
#define KZ_SIP_INLINE_VIAS 3
#define KZ_SIP_INLINE_ADDRS 4

/* A parsed message.  Reference-counted (kz_ref/kz_deref).  All slices
 * point into `raw`: either the caller's buffer (zero-copy parse: the
 * caller keeps it alive and unchanged as long as the message lives) or a
 * copy kept inside the message's own allocation (KZ_SIP_PARSE_COPY, and
 * always for messages returned by the stream framer). */
struct kz_sip_msg {
  bool is_request;
  /* request line */
  enum kz_sip_method method;
  struct kz_slice method_text;
  struct kz_sip_uri ruri;
  /* status line */
  uint16_t status;
  struct kz_slice reason;

  struct kz_slice raw;  /* the message bytes (after leading CRLFs) */
  struct kz_slice body; /* exactly Content-Length bytes, or the rest of the
                           datagram when Content-Length is absent */

  struct kz_sip_hdr *hdrs;
  size_t nhdrs;

  /* Parsed forms of the headers later layers need.  Multi-value headers
   * are flattened in order over all their lines. */
  struct kz_sip_via *vias;
  size_t nvias;
  struct kz_sip_addr from, to;  /* valid: both are required */
  struct kz_slice call_id;
  struct kz_sip_cseq cseq;
  struct kz_sip_addr *contacts;
  size_t ncontacts;
  bool contact_star;             /* "Contact: *" */
  struct kz_sip_addr *routes;
  size_t nroutes;
  struct kz_sip_addr *rroutes;   /* Record-Route */
  size_t nrroutes;
  int max_forwards;              /* -1 when absent */
  int64_t content_length;        /* -1 when absent */
  int64_t expires;               /* -1 when absent or not a number;
                                    clamped to UINT32_MAX */
  struct kz_slice content_type;  /* "application/sdp" without params, or absent */

  /* private: first header index+1 per id, inline storage.  Everything
   * above hdrs_inline_ is zeroed when a message is created; the inline
   * arrays are not (each element is written whole when handed out), so
   * keep every field that needs a defined initial value above them. */
  uint32_t first_[KZ_SIP_HDR_COUNT];
  size_t hdrs_cap_, vias_cap_, contacts_cap_, routes_cap_, rroutes_cap_;
  size_t copy_cap_; /* bytes after the structure for a copy (reuse) */
  struct kz_sip_hdr hdrs_inline_[KZ_SIP_INLINE_HDRS];
  struct kz_sip_via vias_inline_[KZ_SIP_INLINE_VIAS];
  struct kz_sip_addr addrs_inline_[KZ_SIP_INLINE_ADDRS];
};

/* Parse flags. */
#define KZ_SIP_PARSE_COPY 1u /* keep a private copy of the bytes */

/* Parses one message with datagram framing (RFC 3261 §18.3): leading
 * CRLFs are skipped; the header block ends at the first empty line (or at
 * the end of the datagram); the body is the rest of the datagram, cut to
 * Content-Length when present (trailing bytes are ignored); a
 * Content-Length larger than the rest is an error.
 * On success *out is a new message with one reference (kz_deref it).
 * Returns 0, KZ_EPROTO (malformed: *err says why; err may be NULL),
 * KZ_ENOENT (only CRLF keep-alive bytes, no message), KZ_EINVAL (NULL
 * arguments) or KZ_ENOMEM. */
int kz_sip_msg_parse(struct kz_sip_msg **out, const void *data, size_t len, unsigned flags,
                     struct kz_sip_perr *err);

/* Like kz_sip_msg_parse, but parses into `reuse` when it can instead of
 * allocating: reuse is a message from an earlier parse whose only
 * reference the caller holds (kz_refcount 1) and that nothing points
 * into any more.  On success the caller's reference to reuse is spent:
 * *out is the new message (reuse itself, or a fresh allocation when
 * reuse is NULL, shared, or too small for a KZ_SIP_PARSE_COPY of these
 * bytes; reuse is then released).  On failure reuse is left to the
 * caller, still valid to kz_deref or to pass again.  For a long-lived
 * receiver (one parse per datagram, the message dropped before the next)
 * it saves an allocation and a free of ~4 KB per message.  Returns as
 * kz_sip_msg_parse. */
int kz_sip_msg_parse_reuse(struct kz_sip_msg **out, struct kz_sip_msg *reuse, const void *data,
                           size_t len, unsigned flags, struct kz_sip_perr *err);

/* First header with this id, or NULL; then kz_sip_msg_hdr_next() for
 * the following ones with the same id.  KZ_SIP_HDR_OTHER gives NULL. */
const struct kz_sip_hdr *kz_sip_msg_hdr(const struct kz_sip_msg *m, enum kz_sip_hdr_id id);
const struct kz_sip_hdr *kz_sip_msg_hdr_next(const struct kz_sip_msg *m,
                                             const struct kz_sip_hdr *h);
/* First header whose name matches case-insensitively (long or compact
 * form of a known header, or any unknown name), or NULL. */
const struct kz_sip_hdr *kz_sip_msg_hdr_by_name(const struct kz_sip_msg *m, struct kz_slice name);

/* Writes the message in canonical form to b: the start line, then one
 * line per header field with its full name, ": ", the value with folds
 * replaced by one SP, then an empty line and the body.  Returns 0 or
 * KZ_ENOMEM (b may then hold a partial message). */
int kz_sip_msg_print(const struct kz_sip_msg *m, struct kz_buf *b);

/* Appends v to b with every fold (CR/LF with the whitespace around it)
 * replaced by one SP.  Returns 0 or KZ_ENOMEM. */
int kz_sip_unfold(struct kz_buf *b, struct kz_slice v);

/* Finds parameter `name` (case-insensitive) in a raw parameter list
 * (";a=1;b;c="x""), as found in the params fields above.  Returns true
 * and sets *value (absent-or-empty p/len for a parameter without value,
 * quoted values keep their quotes) or false. value may be NULL. */
bool kz_sip_param_get(struct kz_slice params, const char *name, struct kz_slice *value);

/* Parses a standalone URI (no surrounding whitespace or <>).  Returns 0
 * or KZ_EPROTO. */
int kz_sip_uri_parse(struct kz_slice s, struct kz_sip_uri *u);

/* Names: canonical long header name ("Call-ID") or NULL for OTHER; id of
 * a header name (long or compact, case-insensitive); method names. */
const char *kz_sip_hdr_name(enum kz_sip_hdr_id id);
enum kz_sip_hdr_id kz_sip_hdr_lookup(struct kz_slice name);
const char *kz_sip_method_name(enum kz_sip_method m);
enum kz_sip_method kz_sip_method_lookup(struct kz_slice name);

/* ---- Stream framing (TCP, TLS): RFC 3261 §18.3 with Content-Length
 * mandatory, CRLF keep-alives (RFC 5626 §3.5.1) skipped. ---- */

/* Finds the next message in data[0..len): sets *skip to the number of
 * leading CRLF bytes to drop and *msg_len to the message length after
 * them.  Returns 0, KZ_EAGAIN (incomplete: feed more), or KZ_EPROTO with
 * err->fatal set (missing, repeated or bad Content-Length: err->status
 * 400; or the message would exceed max_size: err->status 513): the
 * stream cannot be resynchronised. */
int kz_sip_stream_frame(const void *data, size_t len, size_t max_size, size_t *skip,
                        size_t *msg_len, struct kz_sip_perr *err);

/* A buffering framer for one connection. */
struct kz_sip_framer;

#define KZ_SIP_DEFAULT_MAX_MSG (64u * 1024u)

/* Creates a framer refusing messages larger than max_size bytes (0 means
 * KZ_SIP_DEFAULT_MAX_MSG).  Returns 0, KZ_EINVAL or KZ_ENOMEM. */
int kz_sip_framer_new(struct kz_sip_framer **out, size_t max_size);
void kz_sip_framer_free(struct kz_sip_framer *f);
/* Appends received bytes (copied).  Returns 0 or KZ_ENOMEM. */
int kz_sip_framer_feed(struct kz_sip_framer *f, const void *data, size_t len);
/* Takes the next complete message.  Returns 0 with *out (a message owning
 * a copy of its bytes; kz_deref it), KZ_EAGAIN (need more bytes),
 * KZ_EPROTO with *err: a framed message that failed to parse
 * (err->fatal false: it was dropped, the next call goes on with the
 * following one; a UAS may answer err->status) or a framing error
 * (err->fatal true: every later call fails too; close the connection),
 * or KZ_ENOMEM (retry later). */
int kz_sip_framer_next(struct kz_sip_framer *f, struct kz_sip_msg **out, struct kz_sip_perr *err);
/* Number of CRLFCRLF keep-alive pings skipped since the last call (each
 * deserves a CRLF pong, RFC 5626 §4.4.1); resets the count. */
size_t kz_sip_framer_take_pings(struct kz_sip_framer *f);
/* Bytes buffered and not yet returned as messages. */
size_t kz_sip_framer_pending(const struct kz_sip_framer *f);

#endif /* KZ_SIP_MSG_H */
