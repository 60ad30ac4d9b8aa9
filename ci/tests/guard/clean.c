/* clean.c — code the guard must accept: const tables, instance state, pure functions. */
#include <stddef.h>
#include <string.h>

struct kz_clean_counter {
  int n;
};

static const char *const kz_clean_names[] = {"alpha", "beta"};
static const int kz_clean_table[4] = {1, 2, 3, 4};

int kz_clean_next(struct kz_clean_counter *c) {
  c->n++;
  return c->n + kz_clean_table[c->n & 3];
}
size_t kz_clean_name_len(int i) { return strlen(kz_clean_names[i & 1]); }
