/* topology_int.h — helpers shared by the topology loader's files. */
#ifndef KZ_TOPOLOGY_INT_H
#define KZ_TOPOLOGY_INT_H

#include <stdarg.h>
#include <stddef.h>

#include "kz/topology.h"

/* Index in the distribution names, or -1. */
int topo_dist_from_name(const char *s);
/* Levenshtein distance (99 for words over 63 chars). */
size_t topo_edit_distance(const char *a, const char *b);
/* The choice closest to `word` when it is a likely misspelling, else NULL. */
const char *topo_suggest(const char *word, const char *const *choices, size_t n);
/* The KZ_TOPO_ROLE_COUNT role names. */
const char *const *topo_role_names(void);
/* Overlays the fields `src` sets onto `dst`. */
void topo_link_overlay(struct kz_topo_link *dst, const struct kz_topo_link *src);
/* Formats err; returns KZ_EPROTO. */
int topo_verror(const char *file, struct kz_topo_pos pos, struct kz_topo_err *err, const char *fmt,
                va_list ap);

#endif /* KZ_TOPOLOGY_INT_H */
