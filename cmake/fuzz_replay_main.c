/* fuzz_replay_main.c — runs a libFuzzer target over files and folders without libFuzzer (seed regression). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path, long *count) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "%s: cannot open\n", path);
    return 1;
  }
  size_t cap = 4096, len = 0;
  uint8_t *buf = malloc(cap);
  size_t n;
  while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) {
      uint8_t *nb = realloc(buf, cap *= 2);
      if (!nb) { free(buf); buf = NULL; break; }
      buf = nb;
    }
  }
  fclose(f);
  if (!buf) return 1;
  LLVMFuzzerTestOneInput(buf, len);
  free(buf);
  (*count)++;
  return 0;
}

static int run_path(const char *path, long *count) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "%s: not found\n", path);
    return 1;
  }
  if (!S_ISDIR(st.st_mode)) return run_file(path, count);
  DIR *d = opendir(path);
  if (!d) return 1;
  /* Sorted order keeps runs reproducible. */
  struct dirent **names;
  closedir(d);
  int n = scandir(path, &names, NULL, alphasort);
  int rc = 0;
  for (int i = 0; i < n; i++) {
    if (names[i]->d_name[0] != '.') {
      char sub[4096];
      snprintf(sub, sizeof sub, "%s/%s", path, names[i]->d_name);
      rc |= run_path(sub, count);
    }
    free(names[i]);
  }
  free(names);
  return rc;
}

int main(int argc, char **argv) {
  long count = 0;
  int rc = 0;
  for (int i = 1; i < argc; i++) rc |= run_path(argv[i], &count);
  printf("replayed %ld inputs\n", count);
  return rc || count == 0;
}
