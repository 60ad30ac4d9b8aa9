/* sdp_int.h — helpers shared by the SDP parser, printer, answerer and rewriter (private to kz_sdp). */
#ifndef KZ_SDP_INT_H
#define KZ_SDP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/buf.h"
#include "kz/sdp.h"

/* Walks the space-separated tokens of a field value: *cur is advanced past
 * the token returned in *tok.  Runs of SP count as one separator, leading
 * and trailing SP are ignored.  Returns false when no token is left. */
bool kz_sdp_next_token(struct kz_slice *cur, struct kz_slice *tok);

/* The RFC 3551 static payload type table: fills name/clock/channels for an
 * assigned static type and returns true. */
bool kz_sdp_static_pt(unsigned pt, struct kz_sdp_rtpmap *out);

/* Strict textual IP literal parsers (no OS calls); true on success. */
bool kz_sdp_parse_ip4(struct kz_slice s, uint8_t out[4]);
bool kz_sdp_parse_ip6(struct kz_slice s, uint8_t out[16]);

/* True for the RTP profiles kz understands (proto starts with "RTP/" or
 * contains "/RTP/"), whose formats are payload type numbers. */
bool kz_sdp_proto_is_rtp(struct kz_slice proto);

#endif /* KZ_SDP_INT_H */
