/* rev.c — revision ids, revision trees and CouchDB's deterministic winner rule. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/sha2.h>

#include "db_int.h"
#include "kz/error.h"
#include "kz/mem.h"

int kz_db_rev_parse(struct kz_db_rev *out, const char *s) {
  const char *dash = strchr(s, '-');
  if (!dash || dash == s || dash - s > 18) return KZ_EPROTO;
  int64_t gen = 0;
  for (const char *p = s; p < dash; p++) {
    if (*p < '0' || *p > '9') return KZ_EPROTO;
    gen = gen * 10 + (*p - '0');
  }
  size_t hl = strlen(dash + 1);
  if (hl == 0 || hl > KZ_DB_REV_HASH_MAX) return KZ_EPROTO;
  for (size_t i = 0; i < hl; i++) {
    unsigned char c = (unsigned char)dash[1 + i];
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\') return KZ_EPROTO;
  }
  out->gen = gen;
  memcpy(out->hash, dash + 1, hl + 1);
  return 0;
}

void kz_db_rev_format(const struct kz_db_rev *r, char *buf, size_t len) {
  /* By hand: snprintf was a visible share of a bulk write (two a document). */
  if (!len) return;
  char gen[KZ_I64_DEC_MAX + 1];
  size_t n = kz_i64_to_dec(r->gen, gen);
  gen[n++] = '-';
  size_t a = n < len - 1 ? n : len - 1;
  memcpy(buf, gen, a);
  size_t h = strnlen(r->hash, sizeof r->hash);
  size_t c = h < len - 1 - a ? h : len - 1 - a;
  memcpy(buf + a, r->hash, c);
  buf[a + c] = 0;
}

void kz_db_tree_free(struct kz_db_tree *t) {
  kz_free(t->nodes);
  memset(t, 0, sizeof *t);
}

int kz_db_tree_find(const struct kz_db_tree *t, const struct kz_db_rev *r) {
  for (size_t i = 0; i < t->n; i++)
    if (t->nodes[i].rev.gen == r->gen && !strcmp(t->nodes[i].rev.hash, r->hash)) return (int)i;
  return -1;
}

void kz_db_tree_mark_leaves(struct kz_db_tree *t) {
  for (size_t i = 0; i < t->n; i++) t->nodes[i].leaf = true;
  for (size_t i = 0; i < t->n; i++)
    if (t->nodes[i].parent >= 0) t->nodes[t->nodes[i].parent].leaf = false;
}

/* > 0 when a beats b under the winner rule. */
static int winner_cmp(const struct kz_db_node *a, const struct kz_db_node *b) {
  if (a->deleted != b->deleted) return a->deleted ? -1 : 1;
  if (a->rev.gen != b->rev.gen) return a->rev.gen > b->rev.gen ? 1 : -1;
  return strcmp(a->rev.hash, b->rev.hash);
}

int kz_db_tree_winner(const struct kz_db_tree *t) {
  int best = -1;
  for (size_t i = 0; i < t->n; i++) {
    if (!t->nodes[i].leaf) continue;
    if (best < 0 || winner_cmp(&t->nodes[i], &t->nodes[best]) > 0) best = (int)i;
  }
  return best;
}

size_t kz_db_tree_leaves(const struct kz_db_tree *t, int *idx) {
  size_t n = 0;
  for (size_t i = 0; i < t->n; i++)
    if (t->nodes[i].leaf) idx[n++] = (int)i;
  /* Insertion sort, best first: trees are small. */
  for (size_t i = 1; i < n; i++) {
    int v = idx[i];
    size_t j = i;
    while (j > 0 && winner_cmp(&t->nodes[v], &t->nodes[idx[j - 1]]) > 0) {
      idx[j] = idx[j - 1];
      j--;
    }
    idx[j] = v;
  }
  return n;
}

void kz_db_rev_hash(bool deleted, const struct kz_db_rev *parent, const char *body,
                    size_t body_len, const char *atts, size_t atts_len, char out[33]) {
  struct sha256_ctx ctx;
  sha256_init(&ctx);
  uint8_t flag = deleted ? 1 : 0;
  sha256_update(&ctx, 1, &flag);
  char pbuf[96] = "";
  if (parent) kz_db_rev_format(parent, pbuf, sizeof pbuf);
  sha256_update(&ctx, strlen(pbuf) + 1, (const uint8_t *)pbuf);
  sha256_update(&ctx, body_len, (const uint8_t *)body);
  uint8_t sep = 0;
  sha256_update(&ctx, 1, &sep);
  if (atts) sha256_update(&ctx, atts_len, (const uint8_t *)atts);
  uint8_t d[SHA256_DIGEST_SIZE];
  sha256_digest(&ctx, sizeof d, d);
  for (int i = 0; i < 16; i++) {
    out[2 * i] = "0123456789abcdef"[d[i] >> 4];
    out[2 * i + 1] = "0123456789abcdef"[d[i] & 15];
  }
  out[32] = 0;
}
