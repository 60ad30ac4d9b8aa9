/* digest_int.h — helpers shared by the digest module's files (hashing through nettle, hex, escaping); not installed. */
#ifndef KZ_SIP_DIGEST_INT_H
#define KZ_SIP_DIGEST_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/buf.h"
#include "kz/sip_digest.h"

/* The hash behind an algorithm, ignoring -sess. */
enum kz_sip_digest_alg kz_sip_digest_base_alg_(enum kz_sip_digest_alg alg);
bool kz_sip_digest_is_sess_(enum kz_sip_digest_alg alg);
/* Digest size in bytes (16 or 32), 0 for a bad alg. */
size_t kz_sip_digest_size_(enum kz_sip_digest_alg alg);

/* Decodes exactly 2*n hex digits (either case) into out; false otherwise. */
bool kz_sip_digest_unhex_(struct kz_slice s, uint8_t *out, size_t n);
/* Constant-time equality of n bytes. */
bool kz_sip_digest_ct_eq_(const uint8_t *a, const uint8_t *b, size_t n);
/* True when s holds CR, LF or NUL (which no header value may carry). */
bool kz_sip_digest_has_crlf_(struct kz_slice s);
/* Appends s as a quoted-string, escaping '"', '\\' and control bytes. */
int kz_sip_digest_append_quoted_(struct kz_buf *b, struct kz_slice s);

#endif /* KZ_SIP_DIGEST_INT_H */
