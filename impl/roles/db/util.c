/* util.c — small helpers of the db role: base64, MD5 digests, uuids, name and UTF-8 checks, JSON output. */
#include <stdlib.h>
#include <string.h>

#include <nettle/md5.h>

#include "db_int.h"
#include "kz/error.h"
#include "kz/mem.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int kz_db_b64_encode(struct kz_buf *out, const uint8_t *in, size_t len) {
  if (kz_buf_reserve(out, (len + 2) / 3 * 4 + 1)) return KZ_ENOMEM;
  char *o = (char *)out->data + out->len;
  size_t k = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < len) v |= in[i + 2];
    o[k++] = b64_alphabet[(v >> 18) & 63];
    o[k++] = b64_alphabet[(v >> 12) & 63];
    o[k++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
    o[k++] = i + 2 < len ? b64_alphabet[v & 63] : '=';
  }
  out->len += k;
  out->data[out->len] = 0;
  return 0;
}

static int b64_val(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

int kz_db_b64_decode(struct kz_buf *out, const char *in, size_t len) {
  if (len % 4) return KZ_EPROTO;
  if (kz_buf_reserve(out, len / 4 * 3 + 1)) return KZ_ENOMEM;
  size_t start = out->len;
  for (size_t i = 0; i < len; i += 4) {
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; j++) {
      char c = in[i + (size_t)j];
      if (c == '=' && i + 4 == len && j >= 2) {
        v[j] = 0;
        pad++;
      } else {
        if (pad) goto bad; /* data after padding */
        v[j] = b64_val(c);
        if (v[j] < 0) goto bad;
      }
    }
    uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    out->data[out->len++] = (uint8_t)(x >> 16);
    if (pad < 2) out->data[out->len++] = (uint8_t)(x >> 8);
    if (pad < 1) out->data[out->len++] = (uint8_t)x;
  }
  out->data[out->len] = 0;
  return 0;
bad:
  kz_buf_truncate(out, start);
  return KZ_EPROTO;
}

void kz_db_md5(const void *data, size_t len, uint8_t out[16]) {
  struct md5_ctx ctx;
  md5_init(&ctx);
  md5_update(&ctx, len, data);
  md5_digest(&ctx, MD5_DIGEST_SIZE, out);
}

void kz_db_md5_digest(const void *data, size_t len, char out[32]) {
  uint8_t d[16];
  kz_db_md5(data, len, d);
  memcpy(out, "md5-", 4);
  /* 16 bytes: 24 base64 chars, fits. */
  size_t k = 4;
  for (size_t i = 0; i < 16; i += 3) {
    uint32_t v = (uint32_t)d[i] << 16;
    if (i + 1 < 16) v |= (uint32_t)d[i + 1] << 8;
    if (i + 2 < 16) v |= d[i + 2];
    out[k++] = b64_alphabet[(v >> 18) & 63];
    out[k++] = b64_alphabet[(v >> 12) & 63];
    out[k++] = i + 1 < 16 ? b64_alphabet[(v >> 6) & 63] : '=';
    out[k++] = i + 2 < 16 ? b64_alphabet[v & 63] : '=';
  }
  out[k] = 0;
}

void kz_db_uuid(struct kz_db *db, char out[33]) {
  kz_prng_hex(&db->prng, out, 32);
  out[32] = 0;
}

bool kz_db_name_valid(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 238) return false;
  if (!strcmp(name, "_users") || !strcmp(name, "_replicator") || !strcmp(name, "_global_changes"))
    return true;
  if (name[0] < 'a' || name[0] > 'z') return false;
  for (size_t i = 1; i < n; i++) {
    char c = name[i];
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) continue;
    if (strchr("_$()+/-", c)) continue;
    return false;
  }
  return true;
}

bool kz_db_utf8_valid(const char *s, size_t len) {
  const uint8_t *p = (const uint8_t *)s;
  for (size_t i = 0; i < len;) {
    if (p[i] == 0) return false;
    if (p[i] < 0x80) {
      i++;
      continue;
    }
    size_t n = kz_json_utf8_seq(p + i, len - i);
    if (!n) return false;
    i += n;
  }
  return true;
}

int kz_db_json_dump(struct kz_buf *out, const json_t *j, size_t flags) {
  if (!(flags & ~(size_t)(JSON_COMPACT | JSON_ENCODE_ANY))) return kz_json_write(out, j, KZ_JSON_ENCODE_ANY);
  char *s = json_dumps(j, flags | JSON_COMPACT | JSON_ENCODE_ANY);
  if (!s) return KZ_ENOMEM;
  int rc = kz_buf_append_cstr(out, s);
  free(s);
  return rc;
}
