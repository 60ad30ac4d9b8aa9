/* test_sip_protos.c — PROTOS c07-sip robustness: all 4527 INVITE mutants parse or are refused with a reason, no crash/leak. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sip_msg.h"
#include "kz_test.h"
#include "sip_equiv.h"

#define NCASES 4527

/* Placeholder values a real sender would substitute (README.md). */
static const char *const subst[][2] = {
    {"<To>", "test@127.0.0.1"},        {"<From>", "caller@127.0.0.2"},
    {"<From-Address>", "127.0.0.2"},   {"<From-IP>", "127.0.0.2"},
    {"<Local-Port>", "5061"},          {"<Call-ID>", "protos-case"},
    {"<CSeq>", "1"},                   {"<Branch-ID>", "0"},
    {"<Teardown-Method>", "CANCEL"},
};

/* Substitutes the placeholders, then <Content-Length> by the body size. */
static char *substitute(const char *in, size_t len, size_t *outlen) {
  size_t cap = len * 2 + 256, n = 0;
  char *out = malloc(cap);
  for (size_t i = 0; i < len;) {
    const char *rep = NULL;
    size_t plen = 0;
    if (in[i] == '<') {
      for (size_t k = 0; k < sizeof subst / sizeof subst[0]; k++) {
        size_t l = strlen(subst[k][0]);
        if (l <= len - i && !memcmp(in + i, subst[k][0], l)) {
          rep = subst[k][1];
          plen = l;
          break;
        }
      }
    }
    size_t add = rep ? strlen(rep) : 1;
    if (n + add + 32 > cap) out = realloc(out, cap = cap * 2 + add + 32);
    if (rep) {
      memcpy(out + n, rep, add);
      n += add;
      i += plen;
    } else {
      out[n++] = in[i++];
    }
  }
  static const char ph[] = "<Content-Length>";
  char *p = NULL;
  for (size_t i = 0; i + sizeof ph - 1 <= n; i++)
    if (!memcmp(out + i, ph, sizeof ph - 1)) {
      p = out + i;
      break;
    }
  if (p) {
    size_t body = 0;
    for (size_t i = 0; i + 4 <= n; i++)
      if (!memcmp(out + i, "\r\n\r\n", 4)) {
        body = n - i - 4;
        break;
      }
    char num[32];
    int nl = snprintf(num, sizeof num, "%zu", body);
    size_t off = (size_t)(p - out);
    memmove(out + off + nl, out + off + sizeof ph - 1, n - off - (sizeof ph - 1));
    memcpy(out + off, num, (size_t)nl);
    n = n - (sizeof ph - 1) + (size_t)nl;
  }
  *outlen = n;
  return out;
}

struct counts {
  long parsed, refused, parsed_raw, refused_raw;
};

static void run_one(const char *rec, size_t len, struct counts *c, int raw, const char *name) {
  struct kz_sip_msg *m = NULL;
  struct kz_sip_perr err;
  int rc = kz_sip_msg_parse(&m, rec, len, 0, &err);
  if (rc == 0) {
    char why[256];
    int parsed;
    ck_assert_msg(kz_sip_test_roundtrip(rec, len, &parsed, why, sizeof why) == 0,
                  "%s: round trip: %s", name, why);
    kz_deref(m);
    raw ? c->parsed_raw++ : c->parsed++;
  } else {
    ck_assert_msg(rc == KZ_EPROTO || rc == KZ_ENOENT, "%s: rc %d", name, rc);
    ck_assert_msg(err.reason[0] != 0, "%s: refused without a reason", name);
    raw ? c->refused_raw++ : c->refused++;
  }
}

START_TEST(test_protos) {
  char tarball[1024];
  kz_test_shared_path(tarball, sizeof tarball, "corpora/protos/c07-sip-cases-all.tar.gz");
  if (access(tarball, R_OK) != 0) {
    printf("SKIP: %s not found (set KZ_SHARED_DIR)\n", tarball);
    return;
  }
  char dir[] = "/tmp/kz_sip_protos_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char cmd[3072];
  snprintf(cmd, sizeof cmd, "tar xzf '%s' -C '%s'", tarball, dir);
  ck_assert_int_eq(system(cmd), 0);
  struct counts c = {0};
  long files = 0;
  for (int i = 0; i < NCASES; i++) {
    char path[2048];
    snprintf(path, sizeof path, "%s/cases/%07d", dir, i);
    size_t len;
    char *data = (char *)kz_test_read_file(path, &len);
    ck_assert_msg(data != NULL, "missing %s", path);
    files++;
    /* record 1: "<decimal length> <bytes>" */
    char *sp = memchr(data, ' ', len < 16 ? len : 16);
    ck_assert_ptr_nonnull(sp);
    size_t rlen = strtoul(data, NULL, 10);
    const char *rec = sp + 1;
    ck_assert_uint_le(rlen, len - (size_t)(rec - data));
    run_one(rec, rlen, &c, 1, path);
    size_t slen;
    char *s = substitute(rec, rlen, &slen);
    run_one(s, slen, &c, 0, path);
    if (i == 0) ck_assert_msg(c.parsed == 1, "case 0 (the valid INVITE) must parse");
    free(s);
    free(data);
  }
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
  printf("PROTOS c07-sip: %ld cases; substituted: %ld parsed, %ld refused; "
         "raw templates: %ld parsed, %ld refused\n",
         files, c.parsed, c.refused, c.parsed_raw, c.refused_raw);
  ck_assert_int_eq(files, NCASES);
}
END_TEST

int main(void) {
  Suite *s = suite_create("sip_protos");
  TCase *tc = kz_tcase(s, "protos", 600);
  tcase_add_test(tc, test_protos);
  return kz_run_suite(s);
}
