/* seed_apply.c — applies a seed plan through kz_dbclient: creates databases, then creates, updates or leaves each document, idempotently. */
#include <stdio.h>
#include <string.h>

#include "kz/apps_seed.h"
#include "kz/dbclient.h"
#include "kz/error.h"
#include "kz/mem.h"

#define SEED_MAX_CONFLICTS 5

struct kz_apps_seed_run {
  struct kz_dbclient *db;
  const struct kz_apps_seed_plan *plan;
  kz_apps_seed_progress_fn *progress;
  kz_apps_seed_done_fn *done;
  void *arg;
  size_t i_db, i_doc;
  unsigned conflicts; /* of the current document */
  json_t *sending;    /* the document being PUT (one reference) */
  struct kz_apps_seed_stats st;
  bool finished;
};

static int next(struct kz_apps_seed_run *run);

static void finish(struct kz_apps_seed_run *run, int err, const char *msg) {
  run->finished = true;
  json_decref(run->sending);
  run->sending = NULL;
  run->done(run->arg, err, msg, &run->st);
}

static void fail_result(struct kz_apps_seed_run *run, const char *verb, const char *db, const char *id,
                        const struct kz_dbclient_result *r) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s %s%s%s: %d %s%s%s", verb, db, id ? "/" : "", id ? id : "", r->status,
           r->error ? r->error : kz_strerror(r->err), r->reason ? ": " : "", r->reason ? r->reason : "");
  finish(run, r->err ? r->err : KZ_EIO, msg);
}

/* Starts the next step; on a synchronous failure ends the run (we are
 * inside a callback then, except for the very first step). */
static void advance(struct kz_apps_seed_run *run) {
  int rc = next(run);
  if (rc < 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "request not sent: %s", kz_strerror(rc));
    finish(run, rc, msg);
  }
}

static void on_db(void *arg, const struct kz_dbclient_result *r) {
  struct kz_apps_seed_run *run = arg;
  const char *db = run->plan->dbs[run->i_db];
  if (r->err && r->err != KZ_EEXIST) {
    fail_result(run, "PUT", db, NULL, r);
    return;
  }
  if (r->err) run->st.dbs_existing++;
  else run->st.dbs_created++;
  if (run->progress) run->progress(run->arg, db, NULL, r->err ? "exists" : "created");
  run->i_db++;
  advance(run);
}

static void on_get(void *arg, const struct kz_dbclient_result *r);

static void on_put(void *arg, const struct kz_dbclient_result *r) {
  struct kz_apps_seed_run *run = arg;
  const struct kz_apps_seed_doc *d = &run->plan->docs[run->i_doc];
  bool update = json_object_get(run->sending, "_rev") != NULL;
  json_decref(run->sending);
  run->sending = NULL;
  if (r->err == KZ_ECONFLICT && run->conflicts < SEED_MAX_CONFLICTS) {
    /* Written by somebody else meanwhile: read the new revision again. */
    run->conflicts++;
    run->st.conflicts++;
    int rc = kz_dbclient_doc_get(run->db, d->db, d->id, NULL, on_get, run);
    if (rc) finish(run, rc, "request not sent");
    return;
  }
  if (r->err) {
    fail_result(run, "PUT", d->db, d->id, r);
    return;
  }
  if (update) run->st.docs_updated++;
  else run->st.docs_created++;
  if (run->progress) run->progress(run->arg, d->db, d->id, update ? "updated" : "created");
  run->i_doc++;
  run->conflicts = 0;
  advance(run);
}

static void on_get(void *arg, const struct kz_dbclient_result *r) {
  struct kz_apps_seed_run *run = arg;
  const struct kz_apps_seed_doc *d = &run->plan->docs[run->i_doc];
  if (r->err && r->err != KZ_ENOENT) {
    fail_result(run, "GET", d->db, d->id, r);
    return;
  }
  if (!r->err && kz_apps_seed_doc_same(r->json, d->doc)) {
    run->st.docs_unchanged++;
    if (run->progress) run->progress(run->arg, d->db, d->id, "unchanged");
    run->i_doc++;
    run->conflicts = 0;
    advance(run);
    return;
  }
  /* A copy: the plan stays as it was, so a second run compares against
   * the same content. */
  run->sending = json_deep_copy(d->doc);
  int rc = run->sending ? 0 : KZ_ENOMEM;
  if (!rc && !r->err) rc = kz_apps_seed_doc_rebase(run->sending, r->json);
  if (!rc) rc = kz_dbclient_doc_put(run->db, d->db, run->sending, on_put, run);
  if (rc) finish(run, rc, "PUT not sent");
}

/* Returns 1 when a request went out, 0 when the run finished, or a
 * negative code. */
static int next(struct kz_apps_seed_run *run) {
  const struct kz_apps_seed_plan *p = run->plan;
  if (run->i_db < p->ndbs) {
    int rc = kz_dbclient_db_create(run->db, p->dbs[run->i_db], on_db, run);
    return rc ? rc : 1;
  }
  if (run->i_doc < p->ndocs) {
    const struct kz_apps_seed_doc *d = &p->docs[run->i_doc];
    int rc = kz_dbclient_doc_get(run->db, d->db, d->id, NULL, on_get, run);
    return rc ? rc : 1;
  }
  finish(run, 0, "done");
  return 0;
}

int kz_apps_seed_apply(struct kz_apps_seed_run **out, struct kz_dbclient *db,
                       const struct kz_apps_seed_plan *plan, kz_apps_seed_progress_fn *progress,
                       kz_apps_seed_done_fn *done, void *arg) {
  if (!out || !db || !plan || !done || (!plan->ndbs && !plan->ndocs)) return KZ_EINVAL;
  struct kz_apps_seed_run *run = kz_calloc(1, sizeof *run);
  if (!run) return KZ_ENOMEM;
  *run = (struct kz_apps_seed_run){.db = db, .plan = plan, .progress = progress, .done = done, .arg = arg};
  int rc = next(run);
  if (rc < 0) {
    kz_free(run);
    return rc;
  }
  *out = run;
  return 0;
}

void kz_apps_seed_run_free(struct kz_apps_seed_run *run) {
  if (!run) return;
  /* Pending callbacks would find freed memory: the caller frees the run
   * only after done, or frees the db client (which cancels its calls)
   * first. */
  json_decref(run->sending);
  kz_free(run);
}
