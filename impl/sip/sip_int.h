/* sip_int.h — private helpers shared by the SIP parser, printer and framer. */
#ifndef KZ_SIP_INT_H
#define KZ_SIP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/sip_msg.h"

/* Character classes of the RFC 3261 grammar (bit per class). */
#define C_TOKEN 0x1u  /* token */
#define C_WS 0x2u     /* SP HTAB CR LF: LWS inside a (folded) value */
#define C_USER 0x4u   /* user part, without '%' escapes */
#define C_PASS 0x8u   /* password */
#define C_PARAM 0x10u /* URI paramchar */
#define C_HNV 0x20u   /* URI hname/hvalue */
#define C_HOST 0x40u  /* hostname chars (with '_', liberal) */
#define C_GENV 0x80u  /* header param value: token, host, bare IPv6 */
#define C_WORD 0x100u /* Call-ID word */
#define C_URIC 0x200u /* absoluteURI chars */
#define C_HEX 0x400u
#define C_DIGIT 0x800u

extern const uint16_t kz_sip_cc[256];
#define KZ_SIP_HDR_BUCKET 3
extern const uint8_t kz_sip_hdr_hash[128][KZ_SIP_HDR_BUCKET];
extern const char *const kz_sip_hdr_names[KZ_SIP_HDR_COUNT];
#define KZ_SIP_HDR_LOWER_LEN 24 /* > the longest name, a multiple of 8 */
extern const char kz_sip_hdr_lower[KZ_SIP_HDR_COUNT][KZ_SIP_HDR_LOWER_LEN];
extern const uint8_t kz_sip_hdr_name_len[KZ_SIP_HDR_COUNT];
extern const uint8_t kz_sip_hdr_compact[26];

static inline bool kz_sip_is(unsigned char c, unsigned cls) { return (kz_sip_cc[c] & cls) != 0; }

static inline char kz_sip_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

/* A cursor over [p, e). */
struct kz_sip_cur {
  const char *p;
  const char *e;
};

static inline void kz_sip_skip_lws(struct kz_sip_cur *c) {
  while (c->p < c->e && kz_sip_is((unsigned char)*c->p, C_WS)) c->p++;
}

/* Scans a run of chars of class cls; returns its slice (p set even when
 * empty). */
static inline struct kz_slice kz_sip_span(struct kz_sip_cur *c, unsigned cls) {
  const char *s = c->p, *p = c->p, *e = c->e;
  /* Four bytes per bound check: spans are most of what the parser reads. */
  while (e - p >= 4) {
    if (!kz_sip_is((unsigned char)p[0], cls)) goto out;
    if (!kz_sip_is((unsigned char)p[1], cls)) {
      p += 1;
      goto out;
    }
    if (!kz_sip_is((unsigned char)p[2], cls)) {
      p += 2;
      goto out;
    }
    if (!kz_sip_is((unsigned char)p[3], cls)) {
      p += 3;
      goto out;
    }
    p += 4;
  }
  while (p < e && kz_sip_is((unsigned char)*p, cls)) p++;
out:
  c->p = p;
  return (struct kz_slice){s, (size_t)(p - s)};
}

/* Validation helpers (uri.c).  They return NULL on success or a short
 * static text saying what is wrong.  kz_sip_uri_parse_ fills a *zeroed*
 * u (every caller's URI sits in storage zeroed just before: zeroing it
 * again cost more than parsing most URIs). */
const char *kz_sip_uri_parse_(const char *p, const char *e, struct kz_sip_uri *u);
bool kz_sip_ipv6_valid(const char *p, const char *e);
bool kz_sip_host_valid(const char *p, const char *e);
/* Parses a host ("[v6]" or name/IPv4) at c; sets host (without []) and
 * the flag.  Returns NULL or a reason. */
const char *kz_sip_host_scan(struct kz_sip_cur *c, struct kz_slice *host, bool *ipv6);
/* Parses up to 5 digits <= 65535. */
bool kz_sip_port_parse(struct kz_slice s, uint16_t *port);
/* Parses all-digit s into *out, saturating at max (returns false for an
 * empty or non-digit slice; *over set when saturated). */
bool kz_sip_digits(struct kz_slice s, uint64_t max, uint64_t *out, bool *over);

/* Scans a quoted-string starting at c->p == '"'; returns false when it is
 * not terminated. */
bool kz_sip_quoted_scan(struct kz_sip_cur *c);

/* Header parameters ";name[=value]" with LWS around ';' and '='.  Calls
 * `on` for each one; stops at the first char that does not continue the
 * list (',' or end).  Sets *params (absent when there is none).  Returns
 * NULL or a reason. */
typedef const char *kz_sip_param_fn(void *obj, struct kz_slice name, struct kz_slice value,
                                    bool has_value);
const char *kz_sip_hparams(struct kz_sip_cur *c, struct kz_slice *params, kz_sip_param_fn *on,
                           void *obj);

/* Stream framing with a resume point for the header-end search
 * (framer.c); resume is an offset into data, updated on KZ_EAGAIN. */
int kz_sip_frame_(const char *data, size_t len, size_t max_size, size_t *resume, size_t *skip,
                  size_t *msg_len, struct kz_sip_perr *err);

/* Fills err (may be NULL) with status, fatal flag, offset and the
 * concatenation of up to four texts (NULLs skipped). */
void kz_sip_perr_set(struct kz_sip_perr *err, uint16_t status, bool fatal, size_t offset,
                     const char *a, const char *b, const char *c, const char *d);

#endif /* KZ_SIP_INT_H */
