/* client.c — the benchmark's HTTP client: one keep-alive libcurl connection, one phase of CouchDB requests a run, figures as one JSON line. */
#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "docgen.h"

/* usage: kz_bench_db_client URL DB PHASE COUNT SECONDS [ARG]
 *   PHASE single  PUT DB/devNNNNNN, COUNT documents
 *         bulk    POST DB/_bulk_docs, COUNT requests of ARG documents (blkNNNNNN)
 *         reads   GET DB/devNNNNNN, COUNT requests over the first ARG documents
 *         query   GET DB/ARG with "%u" replaced by a document number (printf),
 *                 COUNT requests over the first 1000 documents
 *         setup   DELETE DB, PUT DB (COUNT and SECONDS ignored)
 * Each phase stops after COUNT requests or SECONDS seconds, whichever
 * comes first, and prints {"phase","requests","docs","seconds","p50_us",
 * "p99_us","client_cpu_s","errors"}.  Exit status 1 when any answer was
 * not 2xx (the figures are still printed). */

struct resp {
  char *p;
  size_t n, cap;
};

static size_t on_body(char *data, size_t sz, size_t nm, void *ud) {
  struct resp *r = ud;
  size_t k = sz * nm;
  if (r->n + k + 1 > r->cap) {
    size_t cap = (r->n + k + 1) * 2;
    char *p = realloc(r->p, cap);
    if (!p) return 0;
    r->p = p;
    r->cap = cap;
  }
  memcpy(r->p + r->n, data, k);
  r->n += k;
  r->p[r->n] = 0;
  return k;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

struct client {
  CURL *c;
  struct curl_slist *hdr;
  struct resp body;
  char url[4096];
  const char *base;
  const char *db;
  unsigned errors;
};

/* One request; returns the status (0 on a transport error). */
static long request(struct client *k, const char *method, const char *path, const char *data, size_t len) {
  snprintf(k->url, sizeof k->url, "%s/%s%s", k->base, k->db, path);
  k->body.n = 0;
  curl_easy_setopt(k->c, CURLOPT_URL, k->url);
  curl_easy_setopt(k->c, CURLOPT_CUSTOMREQUEST, method);
  if (data) {
    curl_easy_setopt(k->c, CURLOPT_HTTPGET, 0L);
    curl_easy_setopt(k->c, CURLOPT_POSTFIELDS, data);
    curl_easy_setopt(k->c, CURLOPT_POSTFIELDSIZE, (long)len);
  } else {
    curl_easy_setopt(k->c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(k->c, CURLOPT_CUSTOMREQUEST, method);
  }
  CURLcode rc = curl_easy_perform(k->c);
  long status = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(k->c, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status > 299) {
    if (k->errors++ < 3)
      fprintf(stderr, "client: %s %s -> %ld %s %.300s\n", method, k->url, status,
              rc == CURLE_OK ? "" : curl_easy_strerror(rc), k->body.p ? k->body.p : "");
  }
  return status;
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s URL DB PHASE COUNT SECONDS [ARG]\n", argv[0]);
    return 2;
  }
  struct client k = {.base = argv[1], .db = argv[2]};
  const char *phase = argv[3];
  unsigned count = (unsigned)strtoul(argv[4], NULL, 10);
  double limit = strtod(argv[5], NULL);
  const char *arg = argc > 6 ? argv[6] : "";
  curl_global_init(CURL_GLOBAL_DEFAULT);
  k.c = curl_easy_init();
  k.hdr = curl_slist_append(NULL, "Content-Type: application/json");
  k.hdr = curl_slist_append(k.hdr, "Accept: application/json");
  k.hdr = curl_slist_append(k.hdr, "Expect:");
  curl_easy_setopt(k.c, CURLOPT_HTTPHEADER, k.hdr);
  curl_easy_setopt(k.c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(k.c, CURLOPT_WRITEDATA, &k.body);
  curl_easy_setopt(k.c, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(k.c, CURLOPT_TIMEOUT, 60L);

  if (!strcmp(phase, "setup")) {
    request(&k, "DELETE", "", NULL, 0);
    k.errors = 0;
    long s = request(&k, "PUT", "", NULL, 0);
    printf("{\"phase\":\"setup\",\"status\":%ld}\n", s);
    return s == 201 ? 0 : 1;
  }

  unsigned batch = (unsigned)strtoul(arg, NULL, 10);
  if (!strcmp(phase, "bulk") && batch == 0) batch = 1000;
  unsigned span = !strcmp(phase, "reads") ? (batch ? batch : count) : 1000;
  size_t cap = (size_t)(batch ? batch : 1) * 1024 + 4096;
  char *buf = malloc(cap);
  double *lat = calloc(count ? count : 1, sizeof *lat);
  if (!buf || !lat) return 2;
  unsigned done = 0, docs = 0;
  double c0 = cpu_s(), t0 = now_s();
  for (unsigned i = 0; i < count; i++) {
    double s0 = now_s();
    if (s0 - t0 > limit) break;
    char id[32], path[512];
    long st;
    if (!strcmp(phase, "single")) {
      kz_bench_doc_id(id, sizeof id, "dev", i);
      snprintf(path, sizeof path, "/%s", id);
      int n = kz_bench_doc_body(buf, cap, i);
      st = request(&k, "PUT", path, buf, (size_t)n);
      docs++;
    } else if (!strcmp(phase, "bulk")) {
      size_t n = (size_t)snprintf(buf, cap, "{\"docs\":[");
      for (unsigned j = 0; j < batch; j++) {
        unsigned d = i * batch + j;
        kz_bench_doc_id(id, sizeof id, "blk", d);
        n += (size_t)snprintf(buf + n, cap - n, "%s{\"_id\":\"%s\",", j ? "," : "", id);
        /* The body without its opening brace. */
        char body[1024];
        kz_bench_doc_body(body, sizeof body, d);
        n += (size_t)snprintf(buf + n, cap - n, "%s", body + 1);
      }
      n += (size_t)snprintf(buf + n, cap - n, "]}");
      st = request(&k, "POST", "/_bulk_docs", buf, n);
      docs += batch;
    } else if (!strcmp(phase, "reads")) {
      kz_bench_doc_id(id, sizeof id, "dev", (unsigned)(((uint64_t)i * 7919u) % span));
      snprintf(path, sizeof path, "/%s", id);
      st = request(&k, "GET", path, NULL, 0);
      docs++;
    } else if (!strcmp(phase, "query")) {
      snprintf(path, sizeof path, arg, (unsigned)(((uint64_t)i * 7919u) % span));
      st = request(&k, "GET", path, NULL, 0);
      docs++;
    } else {
      fprintf(stderr, "unknown phase %s\n", phase);
      return 2;
    }
    (void)st;
    lat[done++] = (now_s() - s0) * 1e6;
  }
  double secs = now_s() - t0, cpu = cpu_s() - c0;
  qsort(lat, done, sizeof *lat, cmp_d);
  double p50 = done ? lat[done / 2] : 0, p99 = done ? lat[(size_t)(done * 0.99)] : 0;
  printf("{\"phase\":\"%s\",\"requests\":%u,\"docs\":%u,\"seconds\":%.6f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
         "\"client_cpu_s\":%.6f,\"errors\":%u}\n",
         phase, done, docs, secs, p50, p99, cpu, k.errors);
  curl_slist_free_all(k.hdr);
  curl_easy_cleanup(k.c);
  curl_global_cleanup();
  free(buf);
  free(lat);
  free(k.body.p);
  return k.errors ? 1 : 0;
}
