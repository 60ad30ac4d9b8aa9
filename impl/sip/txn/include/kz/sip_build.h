/* kz/sip_build.h — builds SIP requests, responses, ACKs and CANCELs as wire bytes (RFC 3261 §8, §9, §17.1.1.3), sans-I/O. */
#ifndef KZ_SIP_BUILD_H
#define KZ_SIP_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/buf.h"
#include "kz/prng.h"
#include "kz/sip_msg.h"

/* Every builder appends one complete message (start line, headers,
 * empty line, body, with a Content-Length equal to the body size) to a
 * kz_buf and returns 0, KZ_EINVAL (bad arguments) or KZ_ENOMEM.  On an
 * error the buffer is restored to its length before the call.
 * Randomness (branches, tags, Call-IDs) is drawn from a caller-provided
 * kz_prng (an env sub-stream from kz_env_prng), never from the OS.
 * Values taken from parsed messages are written unfolded. */

/* "z9hG4bK" + 24 random characters. */
#define KZ_SIP_BRANCH_LEN 31
/* Tags and the random part of Call-IDs. */
#define KZ_SIP_TAG_LEN 16
#define KZ_SIP_CALLID_LEN 24

/* Writes a new branch with the RFC 3261 magic cookie into out, which
 * must hold KZ_SIP_BRANCH_LEN + 1 bytes (NUL-terminated). */
void kz_sip_build_branch(struct kz_prng *prng, char *out);
/* Writes KZ_SIP_TAG_LEN random lowercase hex characters + NUL into out
 * (KZ_SIP_TAG_LEN + 1 bytes), for From/To tags. */
void kz_sip_build_tag(struct kz_prng *prng, char *out);

/* What a new request holds.  Slices with p == NULL are "not given".
 * Header values (from, to, routes, contact) are full header values such
 * as "Alice <sip:alice@a.example>" or "<sip:p1.example;lr>". */
struct kz_sip_req_spec {
  const char *method;            /* "INVITE", "BYE"... (required) */
  struct kz_slice ruri;          /* Request-URI (required) */
  struct kz_slice via_transport; /* "UDP" when not given */
  struct kz_slice via_sent_by;   /* "host[:port]" (required) */
  struct kz_slice via_params;    /* extra Via params after the branch, e.g. ";rport" */
  struct kz_slice branch;        /* generated from prng when not given */
  struct kz_slice from;          /* From value without tag (required) */
  struct kz_slice from_tag;      /* generated from prng when not given */
  struct kz_slice to;            /* To value without tag (required) */
  struct kz_slice to_tag;        /* added when given (in-dialog requests) */
  struct kz_slice call_id;       /* generated as <random>@<sent-by host> when not given */
  uint32_t cseq;                 /* CSeq number; 0 draws one below 2^31 */
  int max_forwards;              /* 0 means 70; < 0 omits the header */
  const struct kz_slice *routes; /* Route values, written in this order */
  size_t nroutes;
  struct kz_slice contact;       /* Contact value, omitted when not given */
  struct kz_slice extra_headers; /* raw "Name: value\r\n" lines, copied as they are */
  struct kz_slice content_type;  /* written when given */
  struct kz_slice body;
};

/* Builds a request (RFC 3261 §8.1.1): request line, Via with a branch,
 * Max-Forwards, Route..., From with tag, To, Call-ID, CSeq, Contact,
 * extra headers, Content-Type, Content-Length, body.  prng may be NULL
 * only when branch, from_tag, call_id and cseq are all given.
 * Returns 0, KZ_EINVAL or KZ_ENOMEM. */
int kz_sip_build_request(struct kz_buf *out, const struct kz_sip_req_spec *spec,
                         struct kz_prng *prng);

/* How to answer a request. */
struct kz_sip_resp_spec {
  uint16_t status;               /* 100..699 (required) */
  const char *reason;            /* NULL: kz_sip_reason_phrase(status) */
  struct kz_slice to_tag;        /* To tag to add when the request had none
                                    and status != 100; drawn from prng when
                                    not given */
  struct kz_slice contact;       /* Contact value, omitted when not given */
  struct kz_slice extra_headers; /* raw "Name: value\r\n" lines */
  struct kz_slice content_type;
  struct kz_slice body;
  bool no_record_route;          /* do not copy Record-Route (see below) */
};

/* Builds a response to the parsed request `req` as RFC 3261 §8.2.6 says:
 * status line; every Via line in order; From; To, with a tag added when
 * the request's To had none and the status is not 100; Call-ID; CSeq;
 * Record-Route copied in order for 101-299 responses to dialog-creating
 * requests (INVITE, SUBSCRIBE, REFER; §12.1.1) unless no_record_route;
 * Timestamp copied into a 100 (§8.2.6.1, no delay added); then Contact,
 * extra headers, Content-Type, Content-Length, body.  prng may be NULL
 * when no tag must be drawn.  Returns 0, KZ_EINVAL (not a request, bad
 * status, or a tag is needed and neither to_tag nor prng is given) or
 * KZ_ENOMEM. */
int kz_sip_build_response(struct kz_buf *out, const struct kz_sip_msg *req,
                          const struct kz_sip_resp_spec *spec, struct kz_prng *prng);

/* Builds the ACK for a non-2xx final response `resp` to `invite`
 * (RFC 3261 §17.1.1.3): same Request-URI, Call-ID, From and CSeq number
 * as the INVITE, the INVITE's top Via only (same branch), the To of the
 * response, the INVITE's Route headers, Max-Forwards 70, no body.
 * Returns 0, KZ_EINVAL (not an INVITE, or resp is not a 300-699
 * response) or KZ_ENOMEM. */
int kz_sip_build_ack(struct kz_buf *out, const struct kz_sip_msg *invite,
                     const struct kz_sip_msg *resp);

/* Builds a CANCEL for `req` (RFC 3261 §9.1): same Request-URI, Call-ID,
 * From, To and CSeq number with method CANCEL, only the top Via (same
 * branch), the request's Route headers, Max-Forwards 70, no body.
 * Returns 0, KZ_EINVAL (req is not a request, or is an ACK or CANCEL)
 * or KZ_ENOMEM. */
int kz_sip_build_cancel(struct kz_buf *out, const struct kz_sip_msg *req);

/* The default reason phrase of a status code (RFC 3261 §21 and common
 * extensions), or a class phrase ("Unknown") for codes not in the table.
 * Never NULL. */
const char *kz_sip_reason_phrase(uint16_t status);

#endif /* KZ_SIP_BUILD_H */
