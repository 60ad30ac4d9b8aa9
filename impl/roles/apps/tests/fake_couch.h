/* fake_couch.h — a test double for the db: an in-memory CouchDB subset (databases, documents with revisions, the two registrar views) served over kz_env streams. */
#ifndef KZ_APPS_FAKE_COUCH_H
#define KZ_APPS_FAKE_COUCH_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "kz/env.h"

#define FC_MAX_DBS 16
#define FC_MAX_DOCS 64

struct fc_doc {
  char id[128];
  json_t *doc; /* with _id and _rev */
};

struct fc_db {
  char name[96]; /* raw name ("account/3c/3f/...") */
  struct fc_doc docs[FC_MAX_DOCS];
  size_t ndocs;
};

/* The store and the server's configuration; owned by the test, outlives
 * the server (so a restart keeps the data). */
struct fc_store {
  struct kz_addr listen;
  struct fc_db dbs[FC_MAX_DBS];
  size_t ndbs;
  bool fail_views;   /* answer view queries 500 */
  bool silent_views; /* never answer view queries (timeouts) */
  /* Counters. */
  int requests, view_requests, realm_views, device_views, puts, conflicts;
  char last_view_target[512];
};

/* kz_sim_app-shaped entry points: cfg is the struct fc_store. */
int fc_start(struct kz_env *env, const void *cfg, void **instance);
void fc_stop(void *instance);
/* The port listened on (listen port 0 picks one). */
unsigned fc_port(void *instance);

struct fc_db *fc_db_find(struct fc_store *s, const char *name);
/* The stored document (borrowed) or NULL. */
json_t *fc_doc_find(struct fc_store *s, const char *db, const char *id);
/* Stores doc (the store takes a reference) with a new revision, as a
 * test fixture would; creates the database when missing. */
void fc_put(struct fc_store *s, const char *db, const char *id, json_t *doc);
void fc_store_clear(struct fc_store *s);

#endif /* KZ_APPS_FAKE_COUCH_H */
