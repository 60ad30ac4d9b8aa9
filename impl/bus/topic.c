/* topic.c — RabbitMQ topic-exchange matching of routing keys against binding patterns. */
#include <string.h>

#include "kz/bus.h"

/* Words are addressed by the offset of their first byte.  A non-empty
 * string of n dots has n+1 words; the empty string has none.  "end" is
 * len + 1, one past the last word's terminating position, so the empty
 * string starts at its end. */
struct words {
  const char *s;
  size_t len;
};

static size_t first(const struct words *w) { return w->len ? 0 : w->len + 1; }
static size_t end(const struct words *w) { return w->len + 1; }

static size_t word_len(const struct words *w, size_t pos) {
  const char *dot = memchr(w->s + pos, '.', w->len - pos);
  return dot ? (size_t)(dot - (w->s + pos)) : w->len - pos;
}

static size_t next(const struct words *w, size_t pos) {
  return pos + word_len(w, pos) + 1;
}

static bool word_is(const struct words *w, size_t pos, char c) {
  return word_len(w, pos) == 1 && w->s[pos] == c;
}

/* Glob matching over words, '#' as the many-wildcard and '*' as the
 * one-wildcard: when a literal fails after a '#', the '#' takes one more
 * word and matching resumes.  Remembering only the latest '#' is enough
 * (a later '#' can absorb whatever an earlier one would have), which
 * bounds the work by words(pattern) x words(key). */
bool kz_bus_topic_match(const char *pattern, size_t plen, const char *key,
                        size_t klen) {
  if ((!pattern && plen) || (!key && klen)) return false;
  const struct words pw = {pattern ? pattern : "", plen};
  const struct words kw = {key ? key : "", klen};
  size_t p = first(&pw), k = first(&kw);
  const size_t pend = end(&pw), kend = end(&kw);
  size_t star_p = pend, star_k = kend;
  while (k != kend) {
    if (p != pend && word_is(&pw, p, '#')) {
      star_p = p;
      star_k = k;
      p = next(&pw, p);
    } else if (p != pend &&
               (word_is(&pw, p, '*') ||
                (word_len(&pw, p) == word_len(&kw, k) &&
                 memcmp(pw.s + p, kw.s + k, word_len(&kw, k)) == 0))) {
      p = next(&pw, p);
      k = next(&kw, k);
    } else if (star_p != pend) {
      p = next(&pw, star_p);
      star_k = next(&kw, star_k);
      k = star_k;
    } else {
      return false;
    }
  }
  while (p != pend && word_is(&pw, p, '#')) p = next(&pw, p);
  return p == pend;
}

bool kz_bus_topic_match_cstr(const char *pattern, const char *key) {
  if (!pattern || !key) return false;
  return kz_bus_topic_match(pattern, strlen(pattern), key, strlen(key));
}
