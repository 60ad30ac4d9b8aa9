/* kz_fuzz.h — what every libFuzzer target shares: the check that aborts with its place, and the splitting of an input into FF FE-separated chunks. */
#ifndef KZ_FUZZ_H
#define KZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A failed invariant is a finding: say which, then abort so libFuzzer
 * (or the seed replay under ctest) stops there with a reproducer. */
#define KZ_FUZZ_CHECK(cond)                                                       \
  do {                                                                            \
    if (!(cond)) {                                                                \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);    \
      abort();                                                                    \
    }                                                                             \
  } while (0)

/* The chunk of data[0..size) that starts at *pos and ends before the next
 * FF FE separator (or at the end): sets *start and *len and moves *pos
 * past the separator.  Returns 0 when there is no chunk left.  Targets
 * that replay several messages or requests cut their input this way. */
static inline int kz_fuzz_next_chunk(const uint8_t *data, size_t size, size_t *pos, size_t *start,
                                     size_t *len) {
  if (*pos >= size) return 0;
  size_t s = *pos, e = s;
  while (e + 1 < size && !(data[e] == 0xff && data[e + 1] == 0xfe)) e++;
  if (e + 1 >= size) e = size;
  *pos = e + 2 > size ? size : e + 2;
  *start = s;
  *len = e - s;
  return 1;
}

#endif /* KZ_FUZZ_H */
