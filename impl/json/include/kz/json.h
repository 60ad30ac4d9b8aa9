/* json.h — fast JSON reading and writing around jansson: a direct reader that builds the same values json_loadb would, and a compact writer with json_dumps' exact bytes. */
#ifndef KZ_JSON_H
#define KZ_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kz/buf.h"

/* jansson reads through a per-byte stream callback and writes through a
 * callback per token with a loop-check table per container: on the
 * bus's messages and the db's documents that was a quarter of the CPU.
 * These two do the same work directly.  Both are exact: the reader
 * builds the values json_loadb builds (types, members in input order,
 * strings byte for byte) or gives up, and the writer produces the bytes
 * json_dumps(JSON_COMPACT) produces or fails where it fails. */

/* Reader flags. */
enum {
  KZ_JSON_REJECT_DUPLICATES = 1, /* give up on a repeated member (jansson's JSON_REJECT_DUPLICATES) */
  KZ_JSON_ALLOW_NUL = 2,         /* \u0000 in strings other than member names (JSON_ALLOW_NUL) */
  KZ_JSON_OBJECT_ONLY = 4,       /* the text must be one object (else any value: JSON_DECODE_ANY) */
};

/* Parses data[0..len) into *out (new reference).  It only has to be
 * right on what it accepts: on anything it does not take — invalid JSON
 * of any kind, what `flags` excludes, nesting deeper than max_depth (at
 * most 512), integers of more than 18 digits — it gives up with
 * KZ_EPROTO, and the caller asks json_loadb with the matching flags,
 * whose answer (and error text) stands.  Reals are converted by jansson
 * itself, token by token.  Returns 0, KZ_EPROTO or KZ_ENOMEM. */
int kz_json_parse(const void *data, size_t len, unsigned flags, size_t max_depth, json_t **out);

/* Writer flags. */
enum {
  KZ_JSON_ENCODE_ANY = 1,  /* a top-level scalar is written (else containers only) */
  KZ_JSON_SKIP_PRIVATE = 2 /* top-level object members whose name starts with '_' are left out */
};

/* Appends the bytes json_dumps(v, JSON_COMPACT [| JSON_ENCODE_ANY])
 * gives.  Reals and containers nested deeper than 64 are written by
 * jansson itself.  Nothing is appended on failure.  Returns 0, KZ_EINVAL
 * (what jansson refuses to write: invalid UTF-8, a container inside
 * itself, a scalar without KZ_JSON_ENCODE_ANY, NULL) or KZ_ENOMEM. */
int kz_json_write(struct kz_buf *out, const json_t *v, unsigned flags);
/* Appends one string, quoted and escaped as above.  0, KZ_EINVAL, KZ_ENOMEM. */
int kz_json_write_str(struct kz_buf *out, const char *s, size_t len);

/* A top-level member handed over by kz_json_recode: its name and its
 * value's text (checked, not yet decoded).  0 goes on; anything else
 * makes kz_json_recode give up. */
typedef int (*kz_json_member_fn)(void *ctx, const char *name, size_t name_len, const char *value,
                                 size_t value_len);

/* Appends the bytes kz_json_write(v, 0) gives for the value v that
 * kz_json_parse(data, len, flags, max_depth) builds, without building
 * it: a document read and stored costs one walk instead of a tree made
 * and freed.  Like the reader it only has to be right on what it takes:
 * besides what the reader refuses, it gives up (KZ_EPROTO, nothing
 * appended) on reals, member names with escapes, a member given twice,
 * objects of more than 64 members and nesting deeper than 32; the
 * caller then goes the reader's way.  With on_private set, the
 * top-level members whose name starts with '_' are not written (as
 * KZ_JSON_SKIP_PRIVATE) but handed to it, in order.  With used set,
 * the text may go on after the value (a document inside an array) and
 * *used gets the bytes read up to the value's end.  Returns 0,
 * KZ_EPROTO or KZ_ENOMEM. */
int kz_json_recode(struct kz_buf *out, const void *data, size_t len, unsigned flags, size_t max_depth,
                   kz_json_member_fn on_private, void *ctx, size_t *used);

/* The length (2..4) of the valid UTF-8 sequence at p, by jansson's
 * rules (no overlongs, no surrogates, at most U+10FFFF), or 0. */
size_t kz_json_utf8_seq(const uint8_t *p, size_t avail);

#endif /* KZ_JSON_H */
