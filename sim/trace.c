/* trace.c — the simulator's event trace: one deterministic JSON line per event, chained into a 64-bit hash. */
#include <inttypes.h>
#include <string.h>

#include "kz/error.h"
#include "sim_internal.h"

/* Lines are built in sim->line and emitted by kz_sim_tr_end.  An allocation
 * failure while building a line marks the simulator failed rather than
 * emitting a truncated line: a trace that silently lost a field would
 * defeat its purpose. */

static void put(struct kz_sim *sim, const char *s, size_t n) {
  if (kz_buf_append(&sim->line, s, n) != 0) sim->line_ok = false;
}

static void put_cstr(struct kz_sim *sim, const char *s) { put(sim, s, strlen(s)); }

static void put_key(struct kz_sim *sim, const char *key) {
  put(sim, ",\"", 2);
  put_cstr(sim, key);
  put(sim, "\":", 2);
}

/* JSON string body.  Bytes >= 0x80 are escaped as \u00XX too, so a line
 * is valid JSON whatever a role logged (it reads back as Latin-1). */
static void put_json_str(struct kz_sim *sim, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  put(sim, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      put(sim, e, 2);
    } else if (c == '\n') {
      put(sim, "\\n", 2);
    } else if (c == '\r') {
      put(sim, "\\r", 2);
    } else if (c == '\t') {
      put(sim, "\\t", 2);
    } else if (c < 0x20 || c >= 0x7f) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      put(sim, e, 6);
    } else {
      put(sim, (const char *)&c, 1);
    }
  }
  put(sim, "\"", 1);
}

void kz_sim_tr_begin(struct kz_sim *sim, const char *ev) {
  kz_buf_reset(&sim->line);
  sim->line_ok = true;
  char num[32];
  int n = snprintf(num, sizeof num, "%" PRIu64, sim->now);
  put(sim, "{\"t\":", 5);
  put(sim, num, (size_t)n);
  put_key(sim, "ev");
  put_json_str(sim, ev, strlen(ev));
}

void kz_sim_tr_str(struct kz_sim *sim, const char *key, const char *val) {
  kz_sim_tr_strn(sim, key, val, strlen(val));
}

void kz_sim_tr_strn(struct kz_sim *sim, const char *key, const char *val, size_t len) {
  put_key(sim, key);
  put_json_str(sim, val, len);
}

void kz_sim_tr_u64(struct kz_sim *sim, const char *key, uint64_t v) {
  char num[32];
  int n = snprintf(num, sizeof num, "%" PRIu64, v);
  put_key(sim, key);
  put(sim, num, (size_t)n);
}

void kz_sim_tr_i64(struct kz_sim *sim, const char *key, int64_t v) {
  char num[32];
  int n = snprintf(num, sizeof num, "%" PRId64, v);
  put_key(sim, key);
  put(sim, num, (size_t)n);
}

/* 64-bit hashes are written as 16 hex digits in a string: JSON readers
 * that parse numbers as doubles would round a 64-bit integer. */
void kz_sim_tr_hex64(struct kz_sim *sim, const char *key, uint64_t v) {
  char num[24];
  int n = snprintf(num, sizeof num, "\"%016" PRIx64 "\"", v);
  put_key(sim, key);
  put(sim, num, (size_t)n);
}

void kz_sim_tr_addr(struct kz_sim *sim, const char *key, const struct kz_addr *a) {
  char s[KZ_ADDR_STRLEN];
  size_t n = kz_addr_format(a, s, sizeof s);
  if (n >= sizeof s) n = strlen(s);
  kz_sim_tr_strn(sim, key, s, n);
}

void kz_sim_tr_who(struct kz_sim *sim, const struct kz_sim_host *h,
            const struct kz_sim_proc *p) {
  if (h) kz_sim_tr_str(sim, "host", h->name);
  if (p) kz_sim_tr_str(sim, "proc", p->name);
}

void kz_sim_tr_payload(struct kz_sim *sim, const void *data, size_t len) {
  kz_sim_tr_u64(sim, "len", len);
  kz_sim_tr_hex64(sim, "h", kz_hash64(data, len, 0));
}

void kz_sim_tr_err(struct kz_sim *sim, const char *key, int err) {
  kz_sim_tr_str(sim, key, err ? kz_err_name(err) : "ok");
}

void kz_sim_tr_end(struct kz_sim *sim) {
  put(sim, "}\n", 2);
  if (sim->trace_off) return;
  if (!sim->line_ok) {
    kz_sim_fail(sim, KZ_ENOMEM);
    return;
  }
  const uint8_t *p = sim->line.data;
  size_t n = sim->line.len;
  sim->trace_hash = kz_hash64(p, n, sim->trace_hash);
  sim->stats.trace_lines++;
  if (sim->trace_keep && kz_buf_append(&sim->trace_mem, p, n) != 0)
    kz_sim_fail(sim, KZ_ENOMEM);
  if (sim->trace_file && fwrite(p, 1, n, sim->trace_file) != n)
    kz_sim_fail(sim, KZ_EIO);
}

void kz_sim_trace_free(struct kz_sim *sim) {
  kz_buf_free(&sim->line);
  kz_buf_free(&sim->trace_mem);
}

uint64_t kz_sim_trace_hash(const struct kz_sim *sim) { return sim->trace_hash; }

void kz_sim_set_trace_file(struct kz_sim *sim, FILE *f) { sim->trace_file = f; }

void kz_sim_set_trace_memory(struct kz_sim *sim, bool keep) { sim->trace_keep = keep; }

const uint8_t *kz_sim_trace_data(const struct kz_sim *sim, size_t *len) {
  *len = sim->trace_mem.len;
  return sim->trace_mem.len ? sim->trace_mem.data : (const uint8_t *)"";
}

void kz_sim_trace_mark(struct kz_sim *sim, const char *label) {
  kz_sim_tr_begin(sim, "mark");
  kz_sim_tr_str(sim, "label", label);
  kz_sim_tr_end(sim);
}
