/* kz/http_url.h — request-target helpers: path/query split, percent-decoding, path segments, query pairs. */
#ifndef KZ_HTTP_URL_H
#define KZ_HTTP_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "kz/buf.h"

/* Splits a request-target into its path and query (without the '?';
 * query.p is NULL when there is no '?').  Accepted forms: origin-form
 * "/p?q", absolute-form "http://host/p?q" (the path is what follows the
 * authority, "/" when empty) and asterisk-form "*" (path "*").  A
 * fragment ("#...") is dropped.  Both slices point into `target`.
 * Returns 0 or KZ_EPROTO (with *reason set when reason is not NULL) for
 * an empty target or one of another form (authority-form included). */
int kz_http_target_split(struct kz_slice target, struct kz_slice *path, struct kz_slice *query,
                         const char **reason);

/* Percent-decodes `in` and appends the result to `out`; with
 * plus_is_space, '+' becomes ' ' (form/query encoding).  Refuses a '%'
 * not followed by two hex digits, and NUL bytes (raw or "%00"), so every
 * decoded string is also a valid C string.  On error nothing is appended.
 * Returns 0, KZ_EPROTO (with *reason set when reason is not NULL) or
 * KZ_ENOMEM. */
int kz_http_pct_decode(struct kz_slice in, bool plus_is_space, struct kz_buf *out,
                       const char **reason);

/* A list of decoded strings.  Each item is NUL-terminated in `data`
 * (the NUL is not counted in the slice length), so items[i].p can be
 * used as a C string.  Zero-initialise; free with kz_http_strlist_free. */
struct kz_http_strlist {
  struct kz_slice *items;
  size_t n;
  struct kz_buf data;
};

void kz_http_strlist_free(struct kz_http_strlist *l);

/* Splits a path ("/db%2Fname/doc") at its literal '/' characters and
 * percent-decodes each segment, so an encoded "%2F" stays inside its
 * segment: ["db/name", "doc"].  The leading '/' is skipped; "/" and ""
 * give no segments; empty segments are kept ("/a//b/" gives
 * ["a", "", "b", ""]).  '+' is a literal plus in paths.  *out is
 * overwritten (it must not hold memory) and is left empty on failure.
 * Returns 0, KZ_EPROTO (bad percent-encoding or NUL, *reason set when
 * reason is not NULL) or KZ_ENOMEM. */
int kz_http_path_segments(struct kz_slice path, struct kz_http_strlist *out, const char **reason);

/* Parsed query: keys and values decoded ('+' is a space), in order;
 * repeated keys are kept.  Free with kz_http_query_free. */
struct kz_http_query {
  struct kz_http_strlist keys;
  struct kz_http_strlist values;
};

/* Parses "a=1&b=x+y&c&d=" into pairs (a,1) (b,"x y") (c,"") (d,"").
 * Empty pieces ("&&") are skipped; only the first '=' of a piece splits.
 * *out is overwritten (it must not hold memory), left empty on failure.
 * Returns 0, KZ_EPROTO (bad percent-encoding or NUL, *reason set when
 * reason is not NULL) or KZ_ENOMEM. */
int kz_http_query_parse(struct kz_slice query, struct kz_http_query *out, const char **reason);

void kz_http_query_free(struct kz_http_query *q);

/* Value of the first pair with key `key` (exact match), or KZ_SLICE_NULL
 * (p == NULL) when absent.  Points into q. */
struct kz_slice kz_http_query_get(const struct kz_http_query *q, const char *key);

#endif /* KZ_HTTP_URL_H */
