/* peers.c — keeps a db current with its peers, as the nodes of a CouchDB cluster keep each other (Kazoo's two servers share one): every database a peer has is pulled here by a continuous replication. */
#include <stdlib.h>
#include <string.h>

#include "db_int.h"
#include "kz/error.h"
#include "kz/http_client.h"
#include "kz/mem.h"

/* Each scan asks every peer for GET /_all_dbs, one peer at a time, and
 * for each database there starts (through the same POST /_replicate a
 * client would send) a continuous pull from <peer>/<db> into the local
 * database of the same name, created when missing; a pull that runs
 * already is not asked for again (an account per database makes
 * thousands of them).  A pull whose peer goes away retries with backoff and resumes
 * from its checkpoint when the peer is back, and a scan that cannot
 * reach a peer just tries again next time.  The peer pulls from us the
 * same way, so both sides end up with every database and revision.
 * System databases (a leading '_') stay each node's own. */

#define DEFAULT_SCAN_NS (5000 * UINT64_C(1000000))
#define LIST_TIMEOUT_NS (5000 * UINT64_C(1000000))

struct kz_db_peers {
  struct kz_db *db;
  struct kz_timer timer;
  size_t next;               /* the peer the scan asks next */
  struct kz_http_call *call; /* its GET /_all_dbs in flight */
};

static void scan_next(void *arg);

/* Starts the continuous pull of `name` from `peer` unless it runs (a
 * scan finds most of them running: they are not asked for again). */
static void pull(struct kz_db *db, const char *peer, const char *name) {
  struct kz_buf src = {0};
  int rc = kz_buf_append_cstr(&src, peer);
  if (!rc) rc = kz_buf_append_byte(&src, '/');
  if (!rc) rc = kz_db_enc_append(&src, name);
  if (!rc) rc = kz_buf_append_byte(&src, 0);
  if (!rc && kz_db_repl_running(db, (const char *)src.data, name)) {
    kz_buf_free(&src);
    return;
  }
  json_t *body = rc ? NULL
                    : json_pack("{s:s,s:s,s:b,s:b}", "source", (const char *)src.data, "target", name,
                                "continuous", 1, "create_target", 1);
  char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
  int status = 0;
  json_t *answer = NULL;
  if (txt) rc = kz_db_local_exec(db, "POST", "/_replicate", txt, strlen(txt), &status, &answer);
  else rc = KZ_ENOMEM;
  if (rc || status != 202)
    kz_log(db->env, KZ_LOG_WARN, "db", "peer %s: cannot pull %s (%s, status %d)", peer, name,
           rc ? kz_strerror(rc) : "refused", status);
  json_decref(answer);
  free(txt); /* json_dumps allocates with malloc */
  json_decref(body);
  kz_buf_free(&src);
}

static void on_list(void *arg, int result, struct kz_http_client_resp *resp) {
  struct kz_db_peers *ps = arg;
  struct kz_db *db = ps->db;
  ps->call = NULL;
  const char *peer = db->cfg.peers[ps->next];
  json_t *names = NULL;
  if (result == 200 && resp && resp->body.len)
    names = json_loadb((const char *)resp->body.data, resp->body.len, 0, NULL);
  if (!json_is_array(names)) {
    kz_log(db->env, KZ_LOG_DEBUG, "db", "peer %s: no database list (%s)", peer,
           result < 0 ? kz_strerror(result) : "bad answer");
  } else {
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v) {
      const char *name = json_string_value(v);
      if (name && name[0] != '_' && kz_db_name_valid(name)) pull(db, peer, name);
    }
  }
  json_decref(names);
  ps->next++;
  scan_next(ps);
}

/* Asks the next peer, or waits for the next scan after the last one. */
static void scan_next(void *arg) {
  struct kz_db_peers *ps = arg;
  struct kz_db *db = ps->db;
  while (ps->next < db->cfg.npeers) {
    struct kz_http_client *http;
    struct kz_buf url = {0};
    int rc = kz_db_http(db, &http);
    if (!rc) rc = kz_buf_printf(&url, "%s/_all_dbs", db->cfg.peers[ps->next]);
    struct kz_http_client_req req = {.method = "GET", .url = url.len ? (const char *)url.data : "",
                                     .timeout_ns = LIST_TIMEOUT_NS};
    if (!rc) rc = kz_http_client_request(http, &req, on_list, ps, &ps->call);
    kz_buf_free(&url);
    if (!rc) return; /* on_list goes on */
    kz_log(db->env, KZ_LOG_WARN, "db", "peer %s: %s", db->cfg.peers[ps->next], kz_strerror(rc));
    ps->next++;
  }
  ps->next = 0;
  (void)kz_timer_start(&ps->timer, db->cfg.peer_scan_ns ? db->cfg.peer_scan_ns : DEFAULT_SCAN_NS);
}

int kz_db_peers_start(struct kz_db *db) {
  if (!db->cfg.npeers) return 0;
  if (!db->cfg.peers) return KZ_EINVAL;
  for (size_t i = 0; i < db->cfg.npeers; i++)
    if (!db->cfg.peers[i] || strncmp(db->cfg.peers[i], "http://", 7)) return KZ_EINVAL;
  struct kz_db_peers *ps = kz_calloc(1, sizeof *ps);
  if (!ps) return KZ_ENOMEM;
  ps->db = db;
  kz_timer_init(&ps->timer, db->env, scan_next, ps);
  db->peers = ps;
  /* The first scan right away (from the loop, not from here). */
  return kz_timer_start(&ps->timer, 0);
}

void kz_db_peers_free(struct kz_db *db) {
  struct kz_db_peers *ps = db->peers;
  if (!ps) return;
  kz_timer_stop(&ps->timer);
  if (ps->call) kz_http_client_cancel(db->http, ps->call);
  kz_free(ps);
  db->peers = NULL;
}
