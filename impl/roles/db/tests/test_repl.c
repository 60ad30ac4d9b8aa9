/* test_repl.c — replication between two simulated db hosts: one-shot and continuous, both ways, conflicts, attachments, partitions, restarts, checkpoints. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "db_harness.h"
#include "kz/mem.h"
#include "kz_test.h"

#define MS UINT64_C(1000000)
#define DB1 TH_DB_IP
#define DB2 TH_DB2_IP
#define DB1_URL "http://10.0.0.2:5984"
#define DB2_URL "http://10.0.0.3:5984"

static struct th T;

static void setup(void) {
  th_init(&T, 21, NULL);
  th_add_db2(&T);
  kz_sim_run_for(T.sim, 5 * MS);
}
static void teardown(void) { th_free(&T); }

static struct th_resp *on(uint32_t ip, int status, const char *method, const char *target, const char *body) {
  if (T.ip != ip && !(T.ip == 0 && ip == DB1)) th_target(&T, ip);
  struct th_resp *r = th_req(&T, method, target, body);
  ck_assert_msg(r != NULL, "%s %s: no answer", method, target);
  ck_assert_msg(r->status == status, "%s %s -> %d (want %d): %.*s", method, target, r->status, status,
                (int)r->body.len, (const char *)r->body.data);
  return r;
}

static struct th_resp *replicate(uint32_t ip, const char *body) { return on(ip, 200, "POST", "/_replicate", body); }

static json_int_t hist(struct th_resp *r, const char *k) {
  return json_integer_value(json_object_get(json_array_get(json_object_get(r->json, "history"), 0), k));
}

static int doc_count(uint32_t ip, const char *db) {
  char t[128];
  snprintf(t, sizeof t, "/%s", db);
  return (int)th_int(on(ip, 200, "GET", t, NULL), "doc_count");
}

START_TEST(test_one_shot_remote_and_checkpoint) {
  on(DB1, 201, "PUT", "/src", NULL);
  for (int i = 0; i < 12; i++) {
    char t[64], b[128];
    snprintf(t, sizeof t, "/src/doc%02d", i);
    snprintf(b, sizeof b, "{\"pvt_type\":\"device\",\"n\":%d,\"sip\":{\"username\":\"u%d\"}}", i, i);
    on(DB1, 201, "PUT", t, b);
  }
  /* An attachment, a deletion and a _local doc (never replicated). */
  struct th_resp *r = on(DB1, 201, "PUT", "/src/media1", "{\"_attachments\":{\"prompt.wav\":{\"content_type\":"
                                                         "\"audio/wav\",\"data\":\"UklGRgABAgM=\"}}}");
  r = on(DB1, 200, "GET", "/src/doc11", NULL);
  char t[160];
  snprintf(t, sizeof t, "/src/doc11?rev=%s", th_str(r, "_rev"));
  on(DB1, 200, "DELETE", t, NULL);
  on(DB1, 201, "PUT", "/src/_local/mine", "{\"x\":1}");
  r = replicate(DB1, "{\"source\":\"src\",\"target\":\"" DB2_URL "/dst\",\"create_target\":true}");
  ck_assert(json_is_true(json_object_get(r->json, "ok")));
  ck_assert_int_eq(hist(r, "docs_written"), 13);
  ck_assert_int_eq(hist(r, "docs_read"), 13);
  ck_assert_int_eq(doc_count(DB2, "dst"), 12);
  r = on(DB2, 200, "GET", "/dst/doc05", NULL);
  ck_assert_int_eq(th_int(r, "n"), 5);
  r = on(DB2, 200, "GET", "/dst/media1/prompt.wav", NULL);
  ck_assert_int_eq(r->body.len, 8);
  ck_assert(!memcmp(r->body.data, "RIFF\x00\x01\x02\x03", 8));
  on(DB2, 404, "GET", "/dst/doc11", NULL);
  on(DB2, 404, "GET", "/dst/_local/mine", NULL);
  /* Views on the target index the replicated documents. */
  r = on(DB2, 200, "GET", "/dst/_design/devices/_view/sip_credentials?key=%22u3%22", NULL);
  ck_assert_int_eq(json_array_size(json_object_get(r->json, "rows")), 1);
  /* Again: nothing new, resumed from the checkpoint. */
  r = replicate(DB1, "{\"source\":\"src\",\"target\":\"" DB2_URL "/dst\"}");
  ck_assert(json_is_true(json_object_get(r->json, "no_changes")));
  ck_assert_int_eq(hist(r, "docs_read"), 0);
  on(DB1, 201, "PUT", "/src/late", "{\"v\":1}");
  r = replicate(DB1, "{\"source\":\"src\",\"target\":\"" DB2_URL "/dst\"}");
  ck_assert_int_eq(hist(r, "docs_read"), 1);
  ck_assert_int_eq(doc_count(DB2, "dst"), 13);
  /* Pull the other way into a fresh local db. */
  r = replicate(DB1, "{\"source\":\"" DB2_URL "/dst\",\"target\":\"back\",\"create_target\":true}");
  ck_assert_int_eq(hist(r, "docs_written"), 14);
  ck_assert_int_eq(doc_count(DB1, "back"), 13);
  /* Errors. */
  r = on(DB1, 404, "POST", "/_replicate", "{\"source\":\"nosuch\",\"target\":\"back\"}");
  ck_assert_str_eq(th_str(r, "error"), "db_not_found");
  on(DB1, 404, "POST", "/_replicate", "{\"source\":\"src\",\"target\":\"" DB2_URL "/nosuch\"}");
  on(DB1, 400, "POST", "/_replicate", "{\"source\":\"src\"}");
  on(DB1, 400, "POST", "/_replicate", "{\"source\":\"https://x/y\",\"target\":\"b\"}");
  on(DB1, 405, "GET", "/_replicate", NULL);
}
END_TEST

/* Concurrent edits on both sides, replicated both ways: the same winner
 * on both, the loser listed in _conflicts on both. */
START_TEST(test_conflicts_both_ways) {
  on(DB1, 201, "PUT", "/c", NULL);
  on(DB2, 201, "PUT", "/c", NULL);
  on(DB1, 201, "PUT", "/c/x", "{\"v\":0}");
  replicate(DB1, "{\"source\":\"c\",\"target\":\"" DB2_URL "/c\"}");
  struct th_resp *r = on(DB2, 200, "GET", "/c/x", NULL);
  char rev1[128], body[256];
  snprintf(rev1, sizeof rev1, "%s", th_str(r, "_rev"));
  snprintf(body, sizeof body, "{\"_rev\":\"%s\",\"v\":2,\"side\":\"two\"}", rev1);
  on(DB2, 201, "PUT", "/c/x", body);
  snprintf(body, sizeof body, "{\"_rev\":\"%s\",\"v\":1,\"side\":\"one\"}", rev1);
  on(DB1, 201, "PUT", "/c/x", body);
  on(DB2, 201, "PUT", "/c/only2", "{\"v\":9}");
  /* Push from 1, pull from 2 (both run on host 1). */
  replicate(DB1, "{\"source\":\"c\",\"target\":\"" DB2_URL "/c\"}");
  replicate(DB1, "{\"source\":\"" DB2_URL "/c\",\"target\":\"c\"}");
  char w1[128], w2[128], c1[128], c2[128];
  r = on(DB1, 200, "GET", "/c/x?conflicts=true", NULL);
  snprintf(w1, sizeof w1, "%s", th_str(r, "_rev"));
  json_t *cf = json_object_get(r->json, "_conflicts");
  ck_assert_int_eq(json_array_size(cf), 1);
  snprintf(c1, sizeof c1, "%s", json_string_value(json_array_get(cf, 0)));
  r = on(DB2, 200, "GET", "/c/x?conflicts=true", NULL);
  snprintf(w2, sizeof w2, "%s", th_str(r, "_rev"));
  cf = json_object_get(r->json, "_conflicts");
  ck_assert_int_eq(json_array_size(cf), 1);
  snprintf(c2, sizeof c2, "%s", json_string_value(json_array_get(cf, 0)));
  ck_assert_str_eq(w1, w2);
  ck_assert_str_eq(c1, c2);
  ck_assert_str_ne(w1, c1);
  /* CouchDB's rule: same generation, the higher hash wins. */
  ck_assert_int_gt(strcmp(w1, c1), 0);
  on(DB1, 200, "GET", "/c/only2", NULL);
  /* Resolving the conflict on one side replicates as a deletion of the loser. */
  snprintf(body, sizeof body, "/c/x?rev=%s", c1);
  on(DB1, 200, "DELETE", body, NULL);
  replicate(DB1, "{\"source\":\"c\",\"target\":\"" DB2_URL "/c\"}");
  r = on(DB2, 200, "GET", "/c/x?conflicts=true", NULL);
  ck_assert_ptr_null(json_object_get(r->json, "_conflicts"));
  ck_assert_str_eq(th_str(r, "_rev"), w1);
}
END_TEST

START_TEST(test_local_to_local_and_doc_ids) {
  on(DB1, 201, "PUT", "/a", NULL);
  on(DB1, 201, "PUT", "/a/k1", "{\"v\":1}");
  on(DB1, 201, "PUT", "/a/k2", "{\"v\":2}");
  struct th_resp *r = replicate(DB1, "{\"source\":\"a\",\"target\":\"b\",\"create_target\":true,\"doc_ids\":[\"k2\"]}");
  ck_assert_int_eq(hist(r, "docs_written"), 1);
  on(DB1, 404, "GET", "/b/k1", NULL);
  on(DB1, 200, "GET", "/b/k2", NULL);
  r = replicate(DB1, "{\"source\":\"a\",\"target\":\"b\"}");
  ck_assert_int_eq(hist(r, "docs_written"), 1);
  on(DB1, 200, "GET", "/b/k1", NULL);
}
END_TEST

/* Continuous replication keeps up with writes, survives a partition and
 * a restart of the target, resumes from its checkpoint, and stops when
 * cancelled. */
START_TEST(test_continuous_partition_restart) {
  on(DB1, 201, "PUT", "/live", NULL);
  on(DB2, 201, "PUT", "/live", NULL);
  const char *spec = "{\"source\":\"live\",\"target\":\"" DB2_URL "/live\",\"continuous\":true}";
  struct th_resp *r = on(DB1, 202, "POST", "/_replicate", spec);
  char local_id[80];
  snprintf(local_id, sizeof local_id, "%s", th_str(r, "_local_id"));
  ck_assert_ptr_nonnull(strstr(local_id, "+continuous"));
  on(DB1, 202, "POST", "/_replicate", spec); /* already running: same id */
  for (int i = 0; i < 5; i++) {
    char t[64];
    snprintf(t, sizeof t, "/live/w%d", i);
    on(DB1, 201, "PUT", t, "{}");
    kz_sim_run_for(T.sim, 20 * MS);
    ck_assert_int_eq(doc_count(DB2, "live"), i + 1);
  }
  /* Partition: writes pile up on host 1. */
  ck_assert_int_eq(kz_sim_partition(T.sim, T.dbh, T.dbh2, true), 0);
  for (int i = 5; i < 10; i++) {
    char t[64];
    snprintf(t, sizeof t, "/live/w%d", i);
    on(DB1, 201, "PUT", t, "{}");
  }
  kz_sim_run_for(T.sim, 3000 * MS);
  ck_assert_int_eq(kz_sim_heal(T.sim, T.dbh, T.dbh2, true), 0);
  kz_sim_run_for(T.sim, 25000 * MS); /* longest backoff plus a request timeout */
  ck_assert_int_eq(doc_count(DB2, "live"), 10);
  /* Every document was read once: the restart resumed from the checkpoint. */
  r = on(DB1, 200, "GET", "/_active_tasks", NULL);
  json_t *task = json_array_get(r->json, 0);
  ck_assert_str_eq(json_string_value(json_object_get(task, "replication_id")), local_id);
  ck_assert_int_eq(json_integer_value(json_object_get(task, "docs_read")), 10);
  /* The target crashes and comes back. */
  ck_assert_int_eq(kz_sim_host_crash(T.dbh2), 0);
  on(DB1, 201, "PUT", "/live/after_crash", "{}");
  kz_sim_run_for(T.sim, 500 * MS);
  ck_assert_int_eq(kz_sim_host_restart(T.dbh2), 0);
  kz_sim_run_for(T.sim, 25000 * MS);
  ck_assert_int_eq(doc_count(DB2, "live"), 11);
  /* Cancel. */
  char body[256];
  snprintf(body, sizeof body, "{\"replication_id\":\"%s\",\"cancel\":true}", local_id);
  on(DB1, 200, "POST", "/_replicate", body);
  on(DB1, 404, "POST", "/_replicate", body);
  on(DB1, 201, "PUT", "/live/after_cancel", "{}");
  kz_sim_run_for(T.sim, 500 * MS);
  ck_assert_int_eq(doc_count(DB2, "live"), 11);
  r = on(DB1, 200, "GET", "/_active_tasks", NULL);
  ck_assert_int_eq(json_array_size(r->json), 0);
}
END_TEST

/* The host running a replication restarts: the replication is gone (as
 * CouchDB's /_replicate), and starting it again resumes from the
 * checkpoint both sides recorded. */
START_TEST(test_replicator_restart_resumes) {
  on(DB1, 201, "PUT", "/r", NULL);
  for (int i = 0; i < 30; i++) {
    char t[64];
    snprintf(t, sizeof t, "/r/d%02d", i);
    on(DB1, 201, "PUT", t, "{}");
  }
  struct th_resp *r = replicate(DB1, "{\"source\":\"r\",\"target\":\"" DB2_URL "/r\",\"create_target\":true}");
  ck_assert_int_eq(hist(r, "docs_read"), 30);
  th_crash_restart(&T);
  on(DB1, 201, "PUT", "/r/new", "{}");
  r = replicate(DB1, "{\"source\":\"r\",\"target\":\"" DB2_URL "/r\"}");
  ck_assert_int_eq(hist(r, "docs_read"), 1);
  ck_assert_int_eq(doc_count(DB2, "r"), 31);
  /* A one-shot replication to a host that is down fails in the end. */
  ck_assert_int_eq(kz_sim_host_crash(T.dbh2), 0);
  th_target(&T, DB1);
  struct th_conn *c = th_conn_open(&T);
  ck_assert_ptr_nonnull(c);
  const char *b = "{\"source\":\"r\",\"target\":\"" DB2_URL "/r\"}";
  char fixed[512];
  snprintf(fixed, sizeof fixed,
           "POST /_replicate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
           strlen(b), b);
  th_send(c, fixed, strlen(fixed));
  struct th_resp got;
  ck_assert_int_eq(th_wait(c, 600000 * MS, &got), 1);
  ck_assert_int_eq(got.status, 500);
  th_resp_free(&got);
  th_conn_close(c);
}
END_TEST

/* Continuous pull from a remote source follows it with longpoll _changes. */
START_TEST(test_continuous_pull_longpoll) {
  on(DB2, 201, "PUT", "/p", NULL);
  on(DB2, 201, "PUT", "/p/first", "{}");
  on(DB1, 202, "POST", "/_replicate",
     "{\"source\":\"" DB2_URL "/p\",\"target\":\"p\",\"create_target\":true,\"continuous\":true}");
  kz_sim_run_for(T.sim, 50 * MS);
  ck_assert_int_eq(doc_count(DB1, "p"), 1);
  /* Quiet for longer than the longpoll timeout, then a write. */
  kz_sim_run_for(T.sim, 25000 * MS);
  on(DB2, 201, "PUT", "/p/second", "{}");
  kz_sim_run_for(T.sim, 50 * MS);
  ck_assert_int_eq(doc_count(DB1, "p"), 2);
  /* Both ways at once: a write on 1 comes back unchanged, no loop. */
  on(DB1, 202, "POST", "/_replicate",
     "{\"source\":\"p\",\"target\":\"" DB2_URL "/p\",\"continuous\":true}");
  on(DB1, 201, "PUT", "/p/from1", "{}");
  kz_sim_run_for(T.sim, 200 * MS);
  ck_assert_int_eq(doc_count(DB2, "p"), 3);
  ck_assert_int_eq(doc_count(DB1, "p"), 3);
  struct th_resp *r = on(DB2, 200, "GET", "/p", NULL);
  json_int_t seq = th_int(r, "update_seq");
  kz_sim_run_for(T.sim, 1000 * MS);
  r = on(DB2, 200, "GET", "/p", NULL);
  ck_assert_int_eq(th_int(r, "update_seq"), seq);
}
END_TEST

/* Peers (kz_db_cfg.peers): two dbs that name each other end up with
 * each other's databases and keep them current both ways; a peer that
 * was killed catches up with what was acknowledged meanwhile. */
static void setup_peers(void) {
  static const char *const to2[] = {DB2_URL}, *const to1[] = {DB1_URL};
  struct kz_db_cfg c1 = {.peers = to2, .npeers = 1, .peer_scan_ns = 1000 * MS};
  struct kz_db_cfg c2 = {.peers = to1, .npeers = 1, .peer_scan_ns = 1000 * MS};
  th_init(&T, 23, &c1);
  th_add_db2_cfg(&T, &c2);
  kz_sim_run_for(T.sim, 5 * MS);
}

START_TEST(test_peers_keep_each_other_current) {
  on(DB1, 201, "PUT", "/account%2Fab%2Fcd%2Fef", NULL);
  on(DB1, 201, "PUT", "/account%2Fab%2Fcd%2Fef/dev1", "{\"n\":1}");
  on(DB2, 201, "PUT", "/only2", NULL);
  on(DB2, 201, "PUT", "/only2/x", "{\"n\":2}");
  kz_sim_run_for(T.sim, 3000 * MS); /* a scan on each side, then the pulls */
  ck_assert_int_eq(doc_count(DB2, "account%2Fab%2Fcd%2Fef"), 1);
  ck_assert_int_eq(doc_count(DB1, "only2"), 1);
  /* Writes on either side reach the other. */
  on(DB2, 201, "PUT", "/account%2Fab%2Fcd%2Fef/dev2", "{}");
  on(DB1, 201, "PUT", "/only2/y", "{}");
  kz_sim_run_for(T.sim, 500 * MS);
  ck_assert_int_eq(doc_count(DB1, "account%2Fab%2Fcd%2Fef"), 2);
  ck_assert_int_eq(doc_count(DB2, "only2"), 2);
  /* db2 is killed; db1 acknowledges 20 writes; db2 comes back and its
   * scan restarts the pulls, which resume from their checkpoints. */
  ck_assert_int_eq(kz_sim_proc_kill(T.dbp2), 0);
  for (int i = 0; i < 20; i++) {
    char t[64];
    snprintf(t, sizeof t, "/only2/k%02d", i);
    on(DB1, 201, "PUT", t, "{}");
  }
  kz_sim_run_for(T.sim, 1000 * MS);
  ck_assert_int_eq(kz_sim_proc_restart(T.dbp2), 0);
  kz_sim_run_for(T.sim, 3000 * MS);
  ck_assert_int_eq(doc_count(DB2, "only2"), 22);
  struct th_resp *r = on(DB2, 200, "GET", "/_active_tasks", NULL);
  ck_assert_int_eq(json_array_size(r->json), 2); /* one pull per database, not one per scan */
}
END_TEST

static Suite *repl_suite(void) {
  Suite *s = suite_create("db_repl");
  TCase *tc = kz_tcase(s, "replication", 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_one_shot_remote_and_checkpoint);
  tcase_add_test(tc, test_conflicts_both_ways);
  tcase_add_test(tc, test_local_to_local_and_doc_ids);
  tcase_add_test(tc, test_continuous_partition_restart);
  tcase_add_test(tc, test_replicator_restart_resumes);
  tcase_add_test(tc, test_continuous_pull_longpoll);
  TCase *tp = kz_tcase(s, "peers", 120);
  tcase_add_checked_fixture(tp, setup_peers, teardown);
  tcase_add_test(tp, test_peers_keep_each_other_current);
  return s;
}

int main(void) { return kz_run_suite(repl_suite()); }
