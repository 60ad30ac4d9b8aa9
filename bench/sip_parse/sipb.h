/* sipb.h — the interface every parser under comparison implements for the SIP parse benchmark. */
#ifndef SIPB_H
#define SIPB_H

#include <stddef.h>
#include <stdint.h>

/* What one parse visited: header fields walked and structured values
 * decoded (each Via, Contact, Route, Record-Route value, From, To, CSeq,
 * credentials...).  Filled by a parse so the report can show that every
 * parser went through the same message to a comparable depth. */
struct sipb_depth {
  unsigned hdrs;   /* header fields (lines, or values for libre's Via/Route) walked */
  unsigned values; /* structured values decoded */
};

/* One parser under comparison.  `prepare` turns the message bytes into
 * whatever the parser's normal receive path starts from (a pointer and a
 * length, or libre's mbuf), outside the timed loop; `parse` is the timed
 * work: parse, decode to the common depth, walk every header, free.  It
 * returns 0 when the message was accepted, -1 when refused (then `why`
 * holds a short reason).  Everything it reads is folded into *sink so
 * the compiler cannot drop the walk. */
struct sipb_parser {
  const char *name;
  const char *version;
  const char *depth_doc; /* Markdown: what "same depth" means for this parser */
  int (*init)(void);     /* once, before anything else; 0 or -1 */
  void (*fini)(void);
  void *(*prepare)(const uint8_t *data, size_t len);
  void (*unprepare)(void *prep);
  int (*parse)(void *prep, uint64_t *sink, struct sipb_depth *depth, char *why, size_t whylen);
};

extern const struct sipb_parser sipb_kz;
extern const struct sipb_parser sipb_kz_copy;
#ifdef SIPB_HAVE_OSIP
extern const struct sipb_parser sipb_osip;
#endif
#ifdef SIPB_HAVE_SOFIA
extern const struct sipb_parser sipb_sofia;
#endif
#ifdef SIPB_HAVE_LIBRE
extern const struct sipb_parser sipb_libre;
#endif

/* A prepared plain input (pointer and length), shared by the adapters
 * whose parse entry point takes bytes. */
struct sipb_bytes {
  const uint8_t *data;
  size_t len;
};
void *sipb_bytes_prepare(const uint8_t *data, size_t len);
void sipb_bytes_unprepare(void *prep);

#endif /* SIPB_H */
