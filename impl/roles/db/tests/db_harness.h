/* db_harness.h — runs kz_db on a simulated host and talks HTTP to it from a second simulated host. */
#ifndef KZ_DB_HARNESS_H
#define KZ_DB_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "kz/buf.h"
#include "kz/db.h"
#include "kz/http.h"
#include "kz/sim.h"

#define TH_DB_IP 0x0a000002u /* 10.0.0.2 */
#define TH_CLIENT_IP 0x0a000001u
#define TH_DB_PORT 5984
#define TH_DB2_IP 0x0a000003u /* 10.0.0.3: the second db host of th_add_db2 */

/* One HTTP response as the client saw it. */
struct th_resp {
  int status;
  struct kz_buf body;
  json_t *json; /* parsed body when it is JSON, else NULL */
  char etag[160];
  char ctype[160];
  char location[256];
  bool chunked;
};

struct th_conn {
  struct th *th;
  struct kz_stream *s;
  struct kz_http_parser *p;
  bool open, closed;
  int close_status;
  bool expect_head;
  struct th_resp resp[8]; /* responses not taken yet */
  int nresp;
  struct kz_buf raw;      /* every byte received, for byte-level checks */
};

struct th {
  struct kz_sim *sim;
  struct kz_sim_host *dbh, *clh;
  struct kz_sim_proc *dbp, *clp;
  struct kz_db_cfg cfg;
  struct th_conn *conn; /* the default connection, reopened on demand */
  struct th_resp last;  /* what th_req returned last */
  struct kz_sim_host *dbh2; /* th_add_db2 */
  struct kz_sim_proc *dbp2;
  struct kz_db_cfg cfg2;    /* db2's, a copy of cfg unless th_add_db2_cfg gave one */
  uint32_t ip;          /* the db th_req talks to; 0 means TH_DB_IP */
};

/* Builds the two-host simulation with a db process using cfg (NULL:
 * defaults on 10.0.0.2:5984).  Zero CPU cost, 1 ms links. */
void th_init(struct th *th, uint64_t seed, const struct kz_db_cfg *cfg);
void th_free(struct th *th);
struct kz_db *th_db(struct th *th);
/* Power-cuts the db's host (writes it did not sync are lost) and boots
 * it again, 10 ms of virtual time after each. */
void th_crash_restart(struct th *th);
/* Adds a second db host (TH_DB2_IP, same cfg) for replication tests. */
void th_add_db2(struct th *th);
/* The same with db2's own configuration (copied; listen defaults to :5984). */
void th_add_db2_cfg(struct th *th, const struct kz_db_cfg *cfg);
/* Points th_req at the db on `ip` (TH_DB_IP or TH_DB2_IP); the default
 * connection is reopened. */
void th_target(struct th *th, uint32_t ip);

/* Opens a connection from the client host; runs until it is connected
 * (or refused).  NULL when it could not connect. */
struct th_conn *th_conn_open(struct th *th);
void th_conn_close(struct th_conn *c);
/* Writes raw bytes on a connection. */
void th_send(struct th_conn *c, const void *data, size_t len);
/* Runs the simulation until a response arrives on c, the connection
 * closes, or `max_ns` of virtual time passes.  Returns 1 with *out
 * filled (caller frees with th_resp_free), 0 otherwise. */
int th_wait(struct th_conn *c, uint64_t max_ns, struct th_resp *out);
void th_resp_free(struct th_resp *r);

/* One request on the default connection: method, target, optional JSON
 * body (sent as application/json unless `headers` names a type) and
 * extra header lines ("Name: value\r\n...").  Returns the response
 * (owned by th, valid until the next call) or NULL when none came. */
struct th_resp *th_req_h(struct th *th, const char *method, const char *target, const char *headers,
                         const void *body, size_t len);
struct th_resp *th_req(struct th *th, const char *method, const char *target, const char *json_body);
/* The same with a printf-formatted JSON body. */
struct th_resp *th_reqf(struct th *th, const char *method, const char *target, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Convenience accessors on the last JSON. */
const char *th_str(const struct th_resp *r, const char *key);
json_int_t th_int(const struct th_resp *r, const char *key);

#endif /* KZ_DB_HARNESS_H */
