/* test_determinism.c — Check suite: the trace is a function of the seed (same seed, same bytes; other seed, other hash). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/buf.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/prng.h"
#include "kz/sim_echo.h"
#include "kz_test.h"
#include "trace_rehash.h"

#define MS UINT64_C(1000000)

/* The echo example over 3 s of virtual time, 20 messages per transport:
 * the client's random tags make the traffic depend on the seed. */
static void run_echo(uint64_t seed, struct kz_buf *trace, struct kz_sim_echo_result *r) {
  struct kz_sim_echo_cfg cfg = {
      .seed = seed, .duration_ns = 3000 * MS, .count = 20, .trace_out = trace};
  ck_assert_int_eq(kz_sim_echo_run(&cfg, r), 0);
  ck_assert(r->done);
  ck_assert_uint_eq(r->udp_echoes, 20);
  ck_assert_uint_eq(r->tcp_echoes, 20);
  ck_assert_uint_gt(trace->len, 0);
}

/* Counts the lines two traces differ in (they have the same line count
 * when only payload bytes differ). */
static size_t differing_lines(const struct kz_buf *a, const struct kz_buf *b) {
  size_t diff = 0, i = 0, j = 0;
  while (i < a->len && j < b->len) {
    const uint8_t *na = memchr(a->data + i, '\n', a->len - i);
    const uint8_t *nb = memchr(b->data + j, '\n', b->len - j);
    ck_assert(na && nb);
    size_t la = (size_t)(na - (a->data + i)), lb = (size_t)(nb - (b->data + j));
    if (la != lb || memcmp(a->data + i, b->data + j, la) != 0) diff++;
    i += la + 1;
    j += lb + 1;
  }
  return diff;
}

START_TEST(test_same_seed_same_trace) {
  struct kz_buf t1, t2;
  kz_buf_init(&t1);
  kz_buf_init(&t2);
  struct kz_sim_echo_result r1, r2;
  run_echo(42, &t1, &r1);
  run_echo(42, &t2, &r2);
  ck_assert_uint_eq(r1.trace_hash, r2.trace_hash);
  ck_assert_uint_eq(r1.events, r2.events);
  ck_assert_uint_eq(r1.trace_lines, r2.trace_lines);
  ck_assert_uint_eq(t1.len, t2.len);
  ck_assert_int_eq(memcmp(t1.data, t2.data, t1.len), 0); /* byte-identical */
  /* The reported hash is the chain over exactly these lines, in their
   * canonical form, recomputed from the text alone. */
  uint64_t h = 0;
  size_t lines = 0;
  ck_assert(trace_rehash(t1.data, t1.len, &h, &lines));
  ck_assert_uint_eq(lines, r1.trace_lines);
  ck_assert_uint_eq(h, r1.trace_hash);
  kz_buf_free(&t1);
  kz_buf_free(&t2);
}
END_TEST

START_TEST(test_other_seed_other_trace) {
  struct kz_buf t42, t43;
  kz_buf_init(&t42);
  kz_buf_init(&t43);
  struct kz_sim_echo_result r42, r43;
  run_echo(42, &t42, &r42);
  run_echo(43, &t43, &r43);
  ck_assert_uint_ne(r42.trace_hash, r43.trace_hash);
  /* The difference is in the traffic (payload hashes and lengths), spread
   * over the run, not in a header line. */
  ck_assert_uint_gt(differing_lines(&t42, &t43), 40);
  kz_buf_free(&t42);
  kz_buf_free(&t43);
}
END_TEST

/* The hash covers every event whether or not anybody keeps the text:
 * with no sink, memory only, file only, it is the same. */
START_TEST(test_hash_without_sink) {
  struct kz_sim_echo_cfg cfg = {.seed = 42, .duration_ns = 3000 * MS, .count = 20};
  struct kz_sim_echo_result bare, mem, file;
  ck_assert_int_eq(kz_sim_echo_run(&cfg, &bare), 0);
  struct kz_buf t;
  kz_buf_init(&t);
  cfg.trace_out = &t;
  ck_assert_int_eq(kz_sim_echo_run(&cfg, &mem), 0);
  cfg.trace_out = NULL;
  cfg.trace_file = tmpfile();
  ck_assert_ptr_nonnull(cfg.trace_file);
  ck_assert_int_eq(kz_sim_echo_run(&cfg, &file), 0);
  ck_assert_int_gt(ftell(cfg.trace_file), 0);
  fclose(cfg.trace_file);
  ck_assert_uint_eq(bare.trace_hash, mem.trace_hash);
  ck_assert_uint_eq(bare.trace_hash, file.trace_hash);
  ck_assert_uint_eq(bare.trace_lines, mem.trace_lines);
  ck_assert_uint_eq(bare.events, mem.events);
  /* and it is the hash of that text */
  uint64_t h = 0;
  size_t lines = 0;
  ck_assert(trace_rehash(t.data, t.len, &h, &lines));
  ck_assert_uint_eq(h, bare.trace_hash);
  ck_assert_uint_eq(lines, bare.trace_lines);
  /* another seed still gives another hash with no sink */
  cfg.trace_file = NULL;
  cfg.seed = 43;
  struct kz_sim_echo_result other;
  ck_assert_int_eq(kz_sim_echo_run(&cfg, &other), 0);
  ck_assert_uint_ne(other.trace_hash, bare.trace_hash);
  kz_buf_free(&t);
}
END_TEST

START_TEST(test_trace_file_matches_memory) {
  FILE *f = tmpfile();
  ck_assert_ptr_nonnull(f);
  struct kz_buf mem;
  kz_buf_init(&mem);
  struct kz_sim_echo_cfg cfg = {
      .seed = 42, .duration_ns = 1000 * MS, .count = 5, .trace_out = &mem, .trace_file = f};
  struct kz_sim_echo_result r;
  ck_assert_int_eq(kz_sim_echo_run(&cfg, &r), 0);
  long size = ftell(f);
  ck_assert_int_eq(size, (long)mem.len);
  rewind(f);
  uint8_t *buf = malloc(mem.len);
  ck_assert_ptr_nonnull(buf);
  ck_assert_uint_eq(fread(buf, 1, mem.len, f), mem.len);
  ck_assert_int_eq(memcmp(buf, mem.data, mem.len), 0);
  free(buf);
  fclose(f);
  kz_buf_free(&mem);
}
END_TEST

/* The echo example over a faulty link (jitter, loss, duplication,
 * reordering) with the pcap on: trace and capture bytes. */
static void run_faulty(uint64_t seed, struct kz_buf *trace, struct kz_buf *pcap,
                       struct kz_sim_echo_result *r) {
  FILE *f = tmpfile();
  ck_assert_ptr_nonnull(f);
  struct kz_sim_echo_cfg cfg = {.seed = seed,
                                .duration_ns = 3000 * MS,
                                .count = 20,
                                .jitter_ns = 3 * MS,
                                .loss_ppm = 100000,
                                .dup_ppm = 50000,
                                .reorder_ppm = 50000,
                                .trace_out = trace,
                                .pcap_file = f};
  ck_assert_int_eq(kz_sim_echo_run(&cfg, r), 0);
  ck_assert_uint_eq(r->tcp_echoes, 20); /* the stream is reliable over loss */
  long size = ftell(f);
  ck_assert_int_gt(size, 24);
  rewind(f);
  ck_assert_int_eq(kz_buf_reserve(pcap, (size_t)size), 0);
  ck_assert_uint_eq(fread(pcap->data, 1, (size_t)size, f), (size_t)size);
  pcap->len = (size_t)size;
  fclose(f);
}

START_TEST(test_faulty_link_same_seed_same_bytes) {
  struct kz_buf t1, t2, p1, p2;
  kz_buf_init(&t1);
  kz_buf_init(&t2);
  kz_buf_init(&p1);
  kz_buf_init(&p2);
  struct kz_sim_echo_result r1, r2;
  run_faulty(7, &t1, &p1, &r1);
  run_faulty(7, &t2, &p2, &r2);
  ck_assert_uint_eq(r1.trace_hash, r2.trace_hash);
  ck_assert_uint_eq(t1.len, t2.len);
  ck_assert_int_eq(memcmp(t1.data, t2.data, t1.len), 0);
  ck_assert_uint_eq(p1.len, p2.len);
  ck_assert_int_eq(memcmp(p1.data, p2.data, p1.len), 0);
  /* the faults really happened */
  ck_assert_ptr_nonnull(strstr((const char *)t1.data, "\"reason\":\"loss\""));
  ck_assert_ptr_nonnull(strstr((const char *)t1.data, "\"ev\":\"udp_dup\""));
  ck_assert_uint_lt(r1.udp_echoes, 20);
  kz_buf_free(&t1);
  kz_buf_free(&t2);
  kz_buf_free(&p1);
  kz_buf_free(&p2);
}
END_TEST

START_TEST(test_faulty_link_other_seed_differs) {
  struct kz_buf t1, t2, p1, p2;
  kz_buf_init(&t1);
  kz_buf_init(&t2);
  kz_buf_init(&p1);
  kz_buf_init(&p2);
  struct kz_sim_echo_result r1, r2;
  run_faulty(7, &t1, &p1, &r1);
  run_faulty(8, &t2, &p2, &r2);
  ck_assert_uint_ne(r1.trace_hash, r2.trace_hash);
  ck_assert(p1.len != p2.len || memcmp(p1.data, p2.data, p1.len) != 0);
  kz_buf_free(&t1);
  kz_buf_free(&t2);
  kz_buf_free(&p1);
  kz_buf_free(&p2);
}
END_TEST

static Suite *determinism_suite(void) {
  Suite *s = suite_create("sim-determinism");
  TCase *tc = kz_tcase(s, "seed", 30);
  tcase_add_test(tc, test_same_seed_same_trace);
  tcase_add_test(tc, test_other_seed_other_trace);
  tcase_add_test(tc, test_trace_file_matches_memory);
  tcase_add_test(tc, test_hash_without_sink);
  tc = kz_tcase(s, "faults", 30);
  tcase_add_test(tc, test_faulty_link_same_seed_same_bytes);
  tcase_add_test(tc, test_faulty_link_other_seed_differs);
  return s;
}

int main(void) { return kz_run_suite(determinism_suite()); }
