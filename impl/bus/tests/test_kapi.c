/* test_kapi.c — kapi validation tables, type identification, builders, bounded parsing and dumps. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/bus.h"
#include "kz/error.h"
#include "kz/kapi.h"
#include "kz/mem.h"
#include "kz_test.h"
#include "test_bus.h"

json_t *kz_bus_test_load(const char *name) {
  char rel[512], path[1024];
  snprintf(rel, sizeof rel, "impl/bus/fuzz/corpus/%s", name);
  kz_test_source_path(path, sizeof path, rel);
  json_error_t jerr;
  json_t *v = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  ck_assert_msg(v != NULL, "cannot load %s: %s", path, jerr.text);
  return v;
}

/* The type a corpus file holds is named by its prefix: "<type>__x.json". */
static enum kz_kapi_type type_of_file(const char *name) {
  const char *sep = strstr(name, "__");
  if (!sep) return KZ_KAPI_UNKNOWN;
  for (int t = 1; t < KZ_KAPI_TYPE_COUNT; t++) {
    const char *tn = kz_kapi_type_name((enum kz_kapi_type)t);
    if (strlen(tn) == (size_t)(sep - name) && strncmp(tn, name, strlen(tn)) == 0)
      return (enum kz_kapi_type)t;
  }
  return KZ_KAPI_UNKNOWN;
}

/* Every example in the corpus validates as its type, is identified as
 * it from its category/name, decodes from its bytes, and survives a
 * dump/decode round trip unchanged.  Every type has an example. */
START_TEST(test_examples_valid) {
  char path[1024];
  kz_test_source_path(path, sizeof path, "impl/bus/fuzz/corpus");
  struct dirent **names;
  int n = scandir(path, &names, NULL, alphasort);
  ck_assert_int_gt(n, 0);
  int seen[KZ_KAPI_TYPE_COUNT] = {0};
  int checked = 0;
  for (int i = 0; i < n; i++) {
    const char *fn = names[i]->d_name;
    if (fn[0] != '.') {
      enum kz_kapi_type t = type_of_file(fn);
      ck_assert_msg(t != KZ_KAPI_UNKNOWN, "%s: no type prefix", fn);
      json_t *m = kz_bus_test_load(fn);
      struct kz_kapi_error err = {{0}};
      ck_assert_msg(kz_kapi_validate(m, t, &err) == 0, "%s: %s", fn,
                    err.reason);
      ck_assert_str_eq(err.reason, "");
      ck_assert_int_eq(kz_kapi_identify_msg(m), t);
      for (int o = 1; o < KZ_KAPI_TYPE_COUNT; o++) {
        if (o != (int)t)
          ck_assert_msg(kz_kapi_validate(m, (enum kz_kapi_type)o, &err) ==
                            KZ_EPROTO,
                        "%s also validates as %s", fn,
                        kz_kapi_type_name((enum kz_kapi_type)o));
      }
      struct kz_buf b;
      kz_buf_init(&b);
      ck_assert_int_eq(kz_kapi_dump(m, &b), 0);
      json_t *back = NULL;
      enum kz_kapi_type bt = KZ_KAPI_UNKNOWN;
      ck_assert_msg(kz_kapi_decode(b.data, b.len, NULL, KZ_KAPI_UNKNOWN,
                                   &back, &bt, &err) == 0,
                    "%s: %s", fn, err.reason);
      ck_assert_int_eq(bt, t);
      ck_assert(json_equal(m, back));
      /* Same bytes again: dumps are deterministic. */
      struct kz_buf b2;
      kz_buf_init(&b2);
      ck_assert_int_eq(kz_kapi_dump(back, &b2), 0);
      ck_assert_uint_eq(b.len, b2.len);
      ck_assert(memcmp(b.data, b2.data, b.len) == 0);
      kz_buf_free(&b2);
      kz_buf_free(&b);
      json_decref(back);
      json_decref(m);
      seen[t]++;
      checked++;
    }
    free(names[i]);
  }
  free(names);
  ck_assert_int_ge(checked, 40);
  for (int t = 1; t < KZ_KAPI_TYPE_COUNT; t++)
    ck_assert_msg(seen[t] > 0, "no example of %s",
                  kz_kapi_type_name((enum kz_kapi_type)t));
}
END_TEST

/* One violation: take an example, set (or with val == NULL delete) one
 * field, and expect this reason. */
struct violation {
  const char *file;
  enum kz_kapi_type type;
  const char *field;
  const char *val; /* JSON text; NULL deletes the field */
  const char *reason;
};

static const struct violation violations[] = {
    /* envelope */
    {"authn_req__register.json", KZ_KAPI_AUTHN_REQ, "Msg-ID", NULL,
     "authn_req: missing required field Msg-ID"},
    {"authn_req__register.json", KZ_KAPI_AUTHN_REQ, "Msg-ID", "\"\"",
     "authn_req: Msg-ID must be a non-empty string: got a string"},
    {"authn_req__register.json", KZ_KAPI_AUTHN_REQ, "App-Name", "5",
     "authn_req: App-Name must be a string: got an integer"},
    {"authn_req__register.json", KZ_KAPI_AUTHN_REQ, "App-Version", "null",
     "authn_req: missing required field App-Version"},
    {"authn_req__register.json", KZ_KAPI_AUTHN_REQ, "Server-ID", "[]",
     "authn_req: Server-ID must be a string: got an array"},
    {"authn_req__register.json", KZ_KAPI_AUTHN_REQ, "Event-Category",
     "\"dialplan\"",
     "authn_req: Event-Category must be 'directory': got 'dialplan'"},
    {"authn_req__register.json", KZ_KAPI_AUTHN_REQ, "Event-Name",
     "\"authn_resp\"",
     "authn_req: Event-Name must be 'authn_req': got 'authn_resp'"},
    /* authn */
    {"authn_req__register.json", KZ_KAPI_AUTHN_REQ, "Auth-Realm", NULL,
     "authn_req: missing required field Auth-Realm"},
    {"authn_req__register.json", KZ_KAPI_AUTHN_REQ, "Method", "\"FOO\"",
     "authn_req: Method must be one of REGISTER, INVITE, SUBSCRIBE, MESSAGE, "
     "REFER, NOTIFY, PUBLISH, OPTIONS, INFO, UPDATE, BYE, ACK, CANCEL, "
     "PRACK: got 'FOO'"},
    {"authn_req__register.json", KZ_KAPI_AUTHN_REQ, "Custom-SIP-Headers",
     "\"X-Foo: 1\"",
     "authn_req: Custom-SIP-Headers must be an object: got a string"},
    {"authn_resp__password.json", KZ_KAPI_AUTHN_RESP, "Auth-Method", "\"md5\"",
     "authn_resp: Auth-Method must be one of password, ip, a1-hash, error, "
     "gsm, nonce, a3a8: got 'md5'"},
    {"authn_resp__password.json", KZ_KAPI_AUTHN_RESP, "Auth-Password", NULL,
     "authn_resp: missing required field Auth-Password"},
    {"authn_resp__password.json", KZ_KAPI_AUTHN_RESP, "Custom-Channel-Vars",
     "\"Account-ID=1\"",
     "authn_resp: Custom-Channel-Vars must be an object: got a string"},
    /* registrations */
    {"reg_success__registered.json", KZ_KAPI_REG_SUCCESS, "Expires", "\"soon\"",
     "reg_success: Expires must be an integer or a string of digits: got a "
     "string"},
    {"reg_success__registered.json", KZ_KAPI_REG_SUCCESS, "Contact", NULL,
     "reg_success: missing required field Contact"},
    {"reg_success__registered.json", KZ_KAPI_REG_SUCCESS, "First-Registration",
     "\"yes\"",
     "reg_success: First-Registration must be a boolean (true, false, \"true\" "
     "or \"false\"): got a string"},
    {"reg_query__realm_user.json", KZ_KAPI_REG_QUERY, "Fields",
     "[\"Contact\", \"Password\"]",
     "reg_query: Fields[1]: 'Password' is not a registration field"},
    {"reg_query__realm_user.json", KZ_KAPI_REG_QUERY, "Fields", "[1]",
     "reg_query: Fields[0] must be a string: got an integer"},
    {"reg_flush__device_edited.json", KZ_KAPI_REG_FLUSH, "Realm", NULL,
     "reg_flush: missing required field Realm"},
    {"reg_query_resp__fields.json", KZ_KAPI_REG_QUERY_RESP, "Fields", "{}",
     "reg_query_resp: Fields must be an array: got an object"},
    /* routing */
    {"route_req__account.json", KZ_KAPI_ROUTE_REQ, "From", "\"1001\"",
     "route_req: From must be user@host: got '1001'"},
    {"route_req__account.json", KZ_KAPI_ROUTE_REQ, "Request", "\"@acme\"",
     "route_req: Request must be user@host: got '@acme'"},
    {"route_req__account.json", KZ_KAPI_ROUTE_REQ, "Call-ID", NULL,
     "route_req: missing required field Call-ID"},
    {"route_req__account.json", KZ_KAPI_ROUTE_REQ, "Resource-Type", "\"fax\"",
     "route_req: Resource-Type must be one of mms, sms, audio, video, chat, "
     "metaflow: got 'fax'"},
    {"route_req__realm.json", KZ_KAPI_ROUTE_REQ, "Cost-Parameters",
     "{\"Max-Cost\": 1}",
     "route_req: Cost-Parameters: unknown cost parameter 'Max-Cost'"},
    {"route_resp__park.json", KZ_KAPI_ROUTE_RESP, "Method", "\"foo\"",
     "route_resp: Method must be one of bridge, park, error, sms, plan, "
     "application: got 'foo'"},
    {"route_resp__park.json", KZ_KAPI_ROUTE_RESP, "Method", "\"fo\\no'\"",
     "route_resp: Method must be one of bridge, park, error, sms, plan, "
     "application: got 'fo?o?'"},
    {"route_resp__park.json", KZ_KAPI_ROUTE_RESP, "Pre-Park", "\"later\"",
     "route_resp: Pre-Park must be one of none, ring_ready, answer: got "
     "'later'"},
    {"route_resp__bridge.json", KZ_KAPI_ROUTE_RESP, "Routes", NULL,
     "route_resp: Routes is required when Method is bridge"},
    {"route_resp__bridge.json", KZ_KAPI_ROUTE_RESP, "Routes",
     "[{\"Route\": \"sip:1@example.net\"}]",
     "route_resp: Routes[0]: missing required field Invite-Format"},
    {"route_resp__bridge.json", KZ_KAPI_ROUTE_RESP, "Routes", "[\"sip:x\"]",
     "route_resp: Routes[0]: route must be an object: got a string"},
    {"route_resp__error.json", KZ_KAPI_ROUTE_RESP, "Route-Error-Code",
     "\"busy\"",
     "route_resp: Route-Error-Code must be a SIP status code (3 digits, "
     "100-699): got 'busy'"},
    {"route_win__callflow.json", KZ_KAPI_ROUTE_WIN, "Control-Queue", NULL,
     "route_win: missing required field Control-Queue"},
    /* call commands */
    {"call_command__answer.json", KZ_KAPI_CALL_COMMAND, "Application-Name",
     "\"dance\"", "call_command: unknown Application-Name 'dance'"},
    {"call_command__answer.json", KZ_KAPI_CALL_COMMAND, "Insert-At",
     "\"later\"",
     "call_command: Insert-At must be one of head, tail, flush, now: got "
     "'later'"},
    {"call_command__answer.json", KZ_KAPI_CALL_COMMAND, "Call-ID", NULL,
     "call_command: missing required field Call-ID"},
    {"call_command__play.json", KZ_KAPI_CALL_COMMAND, "Media-Name", NULL,
     "call_command(play): missing required field Media-Name"},
    {"call_command__play.json", KZ_KAPI_CALL_COMMAND, "Terminators", "\"#x\"",
     "call_command(play): Terminators must be \"none\", a string of DTMF "
     "digits (0-9 * #) or a list of single digits"},
    {"call_command__play.json", KZ_KAPI_CALL_COMMAND, "Leg", "\"C\"",
     "call_command(play): Leg must be one of A, B, Both: got 'C'"},
    {"call_command__hangup.json", KZ_KAPI_CALL_COMMAND, "Other-Leg-Only",
     "\"yes\"",
     "call_command(hangup): Other-Leg-Only must be a boolean (true, false, "
     "\"true\" or \"false\"): got a string"},
    {"call_command__bridge.json", KZ_KAPI_CALL_COMMAND, "Endpoints", NULL,
     "call_command(bridge): missing required field Endpoints"},
    {"call_command__bridge.json", KZ_KAPI_CALL_COMMAND, "Endpoints", "[{}]",
     "call_command(bridge): Endpoints[0]: missing required field "
     "Invite-Format"},
    {"call_command__bridge.json", KZ_KAPI_CALL_COMMAND, "Endpoints",
     "[{\"Invite-Format\": \"smoke\"}]",
     "call_command(bridge): Endpoints[0]: Invite-Format must be one of "
     "username, e164, npan, 1npan, route, loopback, contact, endpoint, "
     "forward, strip_plus: got 'smoke'"},
    {"call_command__bridge.json", KZ_KAPI_CALL_COMMAND, "Dial-Endpoint-Method",
     "\"all\"",
     "call_command(bridge): Dial-Endpoint-Method must be one of single, "
     "simultaneous: got 'all'"},
    {"call_command__tones.json", KZ_KAPI_CALL_COMMAND, "Tones",
     "[{\"Frequencies\": [\"440\"]}]",
     "call_command(tones): Tones[0]: missing required field Duration-ON"},
    {"call_command__record.json", KZ_KAPI_CALL_COMMAND, "Time-Limit", "1.5",
     "call_command(record): Time-Limit must be an integer or a string of "
     "digits: got a real number"},
    {"call_command__record_call.json", KZ_KAPI_CALL_COMMAND, "Record-Action",
     "\"pause\"",
     "call_command(record_call): Record-Action must be one of start, stop: "
     "got 'pause'"},
    {"call_command__respond.json", KZ_KAPI_CALL_COMMAND, "Response-Code",
     "\"sip:486\"",
     "call_command(respond): Response-Code must be a SIP status code (3 "
     "digits, 100-699): got 'sip:486'"},
    {"call_command__respond.json", KZ_KAPI_CALL_COMMAND, "Response-Code",
     "\"700\"",
     "call_command(respond): Response-Code must be a SIP status code (3 "
     "digits, 100-699): got '700'"},
    {"call_command__set.json", KZ_KAPI_CALL_COMMAND, "Custom-Call-Vars", NULL,
     "call_command(set): missing required field Custom-Call-Vars"},
    {"call_command__queue.json", KZ_KAPI_CALL_COMMAND, "Commands",
     "[{\"Application-Name\": \"play\"}]",
     "call_command(queue): Commands[0](play): missing required field "
     "Media-Name"},
    {"call_command__queue.json", KZ_KAPI_CALL_COMMAND, "Commands",
     "[{\"Application-Name\": \"queue\", \"Commands\": []}]",
     "call_command(queue): Commands[0]: a queue cannot contain a queue"},
    {"call_command__queue.json", KZ_KAPI_CALL_COMMAND, "Commands", "[7]",
     "call_command(queue): Commands[0]: a command must be an object: got an "
     "integer"},
    {"call_command__queue.json", KZ_KAPI_CALL_COMMAND, "Commands",
     "[{\"Call-ID\": \"x\"}]",
     "call_command(queue): Commands[0]: missing required field "
     "Application-Name"},
    {"call_command__queue.json", KZ_KAPI_CALL_COMMAND, "Commands",
     "[{\"Application-Name\": \"fly\"}]",
     "call_command(queue): Commands[0]: unknown Application-Name 'fly'"},
    /* call events */
    {"call_event__channel_create.json", KZ_KAPI_CALL_EVENT, "Event-Name",
     "\"CHANNEL_DANCE\"", "call_event: unknown Event-Name 'CHANNEL_DANCE'"},
    {"call_event__channel_create.json", KZ_KAPI_CALL_EVENT, "Call-ID", NULL,
     "call_event: missing required field Call-ID"},
    {"call_event__dtmf.json", KZ_KAPI_CALL_EVENT, "DTMF-Digit", NULL,
     "call_event: DTMF needs a non-empty DTMF-Digit"},
    {"call_event__execute_complete.json", KZ_KAPI_CALL_EVENT,
     "Application-Name", NULL,
     "call_event: CHANNEL_EXECUTE_COMPLETE needs a non-empty "
     "Application-Name"},
    {"call_event__channel_destroy.json", KZ_KAPI_CALL_EVENT, "Hangup-Code",
     "\"486\"",
     "call_event: Hangup-Code must be 'sip:' and a SIP status code: got "
     "'486'"},
    /* nodes, doc changes, offnet */
    {"advertise__ecallmgr.json", KZ_KAPI_NODES_ADVERTISE, "Expires", NULL,
     "advertise: missing required field Expires"},
    {"advertise__ecallmgr.json", KZ_KAPI_NODES_ADVERTISE, "Media-Servers",
     "[]", "advertise: Media-Servers must be an object: got an array"},
    {"doc_change__doc_created.json", KZ_KAPI_DOC_CHANGE, "Event-Name",
     "\"doc_touched\"",
     "doc_change: Event-Name must be one of doc_created, doc_edited, "
     "doc_deleted, db_created, db_edited, db_deleted: got 'doc_touched'"},
    {"doc_change__doc_created.json", KZ_KAPI_DOC_CHANGE, "Type", NULL,
     "doc_change: missing required field Type"},
    {"doc_change__doc_created.json", KZ_KAPI_DOC_CHANGE, "ID", "42",
     "doc_change: ID must be a non-empty string: got an integer"},
    {"offnet_req__bridge.json", KZ_KAPI_OFFNET_REQ, "Application-Name",
     "\"teleport\"",
     "offnet_req: Application-Name must be one of bridge, eavesdrop, fax, "
     "park, sms, transfer: got 'teleport'"},
    {"offnet_req__bridge.json", KZ_KAPI_OFFNET_REQ, "To-DID", "\"\"",
     "offnet_req: To-DID must be a non-empty string: got a string"},
    {"offnet_req__bridge.json", KZ_KAPI_OFFNET_REQ, "Flags", "\"x\"",
     "offnet_req: Flags must be an array: got a string"},
    {"offnet_resp__busy.json", KZ_KAPI_OFFNET_RESP, "Response-Code", "\"486\"",
     "offnet_resp: Response-Code must be 'sip:' and a SIP status code: got "
     "'486'"},
    {"offnet_resp__busy.json", KZ_KAPI_OFFNET_RESP, "Response-Message", NULL,
     "offnet_resp: missing required field Response-Message"},
};

START_TEST(test_violations) {
  const struct violation *v = &violations[_i];
  json_t *m = kz_bus_test_load(v->file);
  if (v->val) {
    json_error_t jerr;
    json_t *val = json_loads(v->val, JSON_DECODE_ANY, &jerr);
    ck_assert_msg(val != NULL, "bad test value %s", v->val);
    json_object_set_new(m, v->field, val);
  } else {
    ck_assert_int_eq(json_object_del(m, v->field), 0);
  }
  struct kz_kapi_error err;
  memset(&err, 'x', sizeof err);
  ck_assert_int_eq(kz_kapi_validate(m, v->type, &err), KZ_EPROTO);
  ck_assert_str_eq(err.reason, v->reason);
  /* The same message as bytes is refused by decode with the same reason
   * and no object. */
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_kapi_dump(m, &b), 0);
  json_t *out = (json_t *)&b; /* must stay untouched */
  struct kz_kapi_error err2 = {{0}};
  ck_assert_int_eq(kz_kapi_decode(b.data, b.len, NULL, v->type, &out, NULL,
                                  &err2),
                   KZ_EPROTO);
  ck_assert_ptr_eq(out, (json_t *)&b);
  ck_assert_str_eq(err2.reason, v->reason);
  kz_buf_free(&b);
  /* A NULL err is allowed. */
  ck_assert_int_eq(kz_kapi_validate(m, v->type, NULL), KZ_EPROTO);
  json_decref(m);
}
END_TEST

START_TEST(test_validate_args) {
  struct kz_kapi_error err;
  json_t *m = kz_bus_test_load("authn_req__register.json");
  ck_assert_int_eq(kz_kapi_validate(NULL, KZ_KAPI_AUTHN_REQ, &err), KZ_EINVAL);
  ck_assert_int_eq(kz_kapi_validate(m, KZ_KAPI_UNKNOWN, &err), KZ_EINVAL);
  ck_assert_int_eq(kz_kapi_validate(m, KZ_KAPI_TYPE_COUNT, &err), KZ_EINVAL);
  ck_assert_int_eq(kz_kapi_validate(m, (enum kz_kapi_type)-1, &err),
                   KZ_EINVAL);
  json_t *arr = json_array();
  ck_assert_int_eq(kz_kapi_validate(arr, KZ_KAPI_AUTHN_REQ, &err), KZ_EPROTO);
  ck_assert_str_eq(err.reason,
                   "authn_req: a message must be a JSON object: got an array");
  /* Fields the table does not list are accepted, as Kazoo does. */
  json_object_set_new(m, "X-Unknown-Field", json_integer(1));
  ck_assert_int_eq(kz_kapi_validate(m, KZ_KAPI_AUTHN_REQ, &err), 0);
  /* An optional field set to null counts as absent. */
  json_object_set_new(m, "Method", json_null());
  ck_assert_int_eq(kz_kapi_validate(m, KZ_KAPI_AUTHN_REQ, &err), 0);
  json_decref(arr);
  json_decref(m);
}
END_TEST

START_TEST(test_identify) {
  static const struct {
    const char *cat, *name;
    enum kz_kapi_type t;
  } cases[] = {
      {"directory", "authn_req", KZ_KAPI_AUTHN_REQ},
      {"directory", "authn_resp", KZ_KAPI_AUTHN_RESP},
      {"directory", "authn_err", KZ_KAPI_AUTHN_ERR},
      {"directory", "reg_success", KZ_KAPI_REG_SUCCESS},
      {"directory", "reg_query", KZ_KAPI_REG_QUERY},
      {"directory", "reg_query_resp", KZ_KAPI_REG_QUERY_RESP},
      {"directory", "reg_query_error", KZ_KAPI_REG_QUERY_ERR},
      {"directory", "reg_flush", KZ_KAPI_REG_FLUSH},
      {"directory", "reg_sync", KZ_KAPI_REG_SYNC},
      {"dialplan", "route_req", KZ_KAPI_ROUTE_REQ},
      {"dialplan", "route_resp", KZ_KAPI_ROUTE_RESP},
      {"dialplan", "route_win", KZ_KAPI_ROUTE_WIN},
      {"call", "command", KZ_KAPI_CALL_COMMAND},
      {"call_event", "CHANNEL_CREATE", KZ_KAPI_CALL_EVENT},
      {"call_event", "CHANNEL_DESTROY", KZ_KAPI_CALL_EVENT},
      {"call_event", "DTMF", KZ_KAPI_CALL_EVENT},
      {"nodes", "advertise", KZ_KAPI_NODES_ADVERTISE},
      {"configuration", "doc_created", KZ_KAPI_DOC_CHANGE},
      {"configuration", "doc_edited", KZ_KAPI_DOC_CHANGE},
      {"configuration", "doc_deleted", KZ_KAPI_DOC_CHANGE},
      {"configuration", "db_created", KZ_KAPI_DOC_CHANGE},
      {"resource", "offnet_req", KZ_KAPI_OFFNET_REQ},
      {"resource", "offnet_resp", KZ_KAPI_OFFNET_RESP},
      /* not ours, or wrong pairs */
      {"directory", "route_req", KZ_KAPI_UNKNOWN},
      {"Directory", "authn_req", KZ_KAPI_UNKNOWN},
      {"call_event", "channel_create", KZ_KAPI_UNKNOWN},
      {"call_event", "channel_status_req", KZ_KAPI_UNKNOWN},
      {"error", "authn_req", KZ_KAPI_UNKNOWN},
      {"", "", KZ_KAPI_UNKNOWN},
      {NULL, "authn_req", KZ_KAPI_UNKNOWN},
      {"directory", NULL, KZ_KAPI_UNKNOWN},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    ck_assert_msg(kz_kapi_identify(cases[i].cat, cases[i].name) == cases[i].t,
                  "case %zu", i);
  json_t *m = json_pack("{s:i, s:s}", "Event-Category", 1, "Event-Name",
                        "authn_req");
  ck_assert_int_eq(kz_kapi_identify_msg(m), KZ_KAPI_UNKNOWN);
  ck_assert_int_eq(kz_kapi_identify_msg(NULL), KZ_KAPI_UNKNOWN);
  json_decref(m);

  /* Table metadata. */
  ck_assert_str_eq(kz_kapi_type_name(KZ_KAPI_ROUTE_RESP), "route_resp");
  ck_assert_str_eq(kz_kapi_type_name(KZ_KAPI_UNKNOWN), "unknown");
  ck_assert_str_eq(kz_kapi_type_name(KZ_KAPI_TYPE_COUNT), "unknown");
  ck_assert_str_eq(kz_kapi_type_category(KZ_KAPI_CALL_COMMAND), "call");
  ck_assert_ptr_null(kz_kapi_type_category(KZ_KAPI_UNKNOWN));
  ck_assert_str_eq(kz_kapi_type_event_name(KZ_KAPI_REG_SUCCESS),
                   "reg_success");
  ck_assert_ptr_null(kz_kapi_type_event_name(KZ_KAPI_CALL_EVENT));
  ck_assert_ptr_null(kz_kapi_type_event_name(KZ_KAPI_DOC_CHANGE));
  ck_assert_str_eq(kz_kapi_type_exchange(KZ_KAPI_AUTHN_REQ), "callmgr");
  ck_assert_str_eq(kz_kapi_type_exchange(KZ_KAPI_AUTHN_RESP), "targeted");
  ck_assert_str_eq(kz_kapi_type_exchange(KZ_KAPI_CALL_COMMAND), "callctl");
  ck_assert_str_eq(kz_kapi_type_exchange(KZ_KAPI_CALL_EVENT), "callevt");
  ck_assert_str_eq(kz_kapi_type_exchange(KZ_KAPI_NODES_ADVERTISE), "nodes");
  ck_assert_str_eq(kz_kapi_type_exchange(KZ_KAPI_OFFNET_REQ), "resources");
  /* Every type's exchange is in the exchange table. */
  for (int t = 1; t < KZ_KAPI_TYPE_COUNT; t++)
    ck_assert_ptr_nonnull(
        kz_bus_exchange_find(kz_kapi_type_exchange((enum kz_kapi_type)t)));
}
END_TEST

/* ------------------------------------------------------------------ */
/* Builders                                                              */

static const struct kz_kapi_origin origin = {"kz_apps", "0.1.0",
                                             "apps@host1", "apps-q-1"};

/* Strips the envelope of an example so it can serve as a body. */
static json_t *body_of(const char *file) {
  json_t *m = kz_bus_test_load(file);
  static const char *const env[] = {"Event-Category", "App-Name",
                                    "App-Version", "Msg-ID", "Server-ID",
                                    "Node"};
  for (size_t i = 0; i < sizeof env / sizeof env[0]; i++)
    json_object_del(m, env[i]);
  return m;
}

static bool is_hex32(const char *s) {
  if (!s || strlen(s) != 32) return false;
  for (; *s; s++) {
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return false;
  }
  return true;
}

START_TEST(test_build_fills_envelope) {
  static const struct {
    const char *file;
    enum kz_kapi_type t;
  } cases[] = {
      {"authn_req__register.json", KZ_KAPI_AUTHN_REQ},
      {"reg_success__registered.json", KZ_KAPI_REG_SUCCESS},
      {"reg_query__realm_user.json", KZ_KAPI_REG_QUERY},
      {"reg_flush__device_edited.json", KZ_KAPI_REG_FLUSH},
      {"reg_sync__restart.json", KZ_KAPI_REG_SYNC},
      {"route_req__account.json", KZ_KAPI_ROUTE_REQ},
      {"call_command__bridge.json", KZ_KAPI_CALL_COMMAND},
      {"call_command__queue.json", KZ_KAPI_CALL_COMMAND},
      {"call_event__channel_destroy.json", KZ_KAPI_CALL_EVENT},
      {"advertise__ecallmgr.json", KZ_KAPI_NODES_ADVERTISE},
      {"doc_change__doc_edited.json", KZ_KAPI_DOC_CHANGE},
      {"offnet_req__bridge.json", KZ_KAPI_OFFNET_REQ},
  };
  struct kz_prng prng;
  kz_prng_seed(&prng, 42);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *body = body_of(cases[i].file);
    json_t *before = json_deep_copy(body);
    json_t *m = NULL;
    struct kz_kapi_error err = {{0}};
    int rc = kz_kapi_build(cases[i].t, &origin, &prng, body, &m, &err);
    ck_assert_msg(rc == 0, "%s: %s", cases[i].file, err.reason);
    ck_assert_int_eq(kz_kapi_validate(m, cases[i].t, &err), 0);
    ck_assert(json_equal(body, before)); /* body untouched */
    ck_assert_str_eq(json_string_value(json_object_get(m, "Event-Category")),
                     kz_kapi_type_category(cases[i].t));
    ck_assert_str_eq(json_string_value(json_object_get(m, "App-Name")),
                     "kz_apps");
    ck_assert_str_eq(json_string_value(json_object_get(m, "App-Version")),
                     "0.1.0");
    ck_assert_str_eq(json_string_value(json_object_get(m, "Node")),
                     "apps@host1");
    ck_assert_str_eq(json_string_value(json_object_get(m, "Server-ID")),
                     "apps-q-1");
    const char *id = json_string_value(json_object_get(m, "Msg-ID"));
    ck_assert_msg(is_hex32(id), "Msg-ID %s", id ? id : "(none)");
    /* Every body field made it. */
    const char *key;
    json_t *val;
    json_object_foreach(body, key, val) {
      ck_assert(json_equal(val, json_object_get(m, key)));
    }
    json_decref(m);
    json_decref(before);
    json_decref(body);
  }
}
END_TEST

START_TEST(test_build_msg_id_deterministic) {
  struct kz_prng a, b;
  kz_prng_seed(&a, 7);
  kz_prng_seed(&b, 7);
  json_t *m1 = NULL, *m2 = NULL, *m3 = NULL;
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_REG_SYNC, &origin, &a, NULL, &m1, NULL), 0);
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_REG_SYNC, &origin, &b, NULL, &m2, NULL), 0);
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_REG_SYNC, &origin, &a, NULL, &m3, NULL), 0);
  const char *i1 = json_string_value(json_object_get(m1, "Msg-ID"));
  const char *i2 = json_string_value(json_object_get(m2, "Msg-ID"));
  const char *i3 = json_string_value(json_object_get(m3, "Msg-ID"));
  ck_assert(is_hex32(i1));
  ck_assert_str_eq(i1, i2);  /* same seed, same id */
  ck_assert_str_ne(i1, i3);  /* next draw, new id */
  /* Same inputs give the same bytes. */
  struct kz_buf b1, b2;
  kz_buf_init(&b1);
  kz_buf_init(&b2);
  ck_assert_int_eq(kz_kapi_dump(m1, &b1), 0);
  ck_assert_int_eq(kz_kapi_dump(m2, &b2), 0);
  ck_assert_str_eq((char *)b1.data, (char *)b2.data);
  const char *prefix =
      "{\"Event-Category\":\"directory\",\"Event-Name\":\"reg_sync\","
      "\"App-Name\":\"kz_apps\",\"App-Version\":\"0.1.0\",\"Msg-ID\":\"";
  ck_assert_msg(strncmp((char *)b1.data, prefix, strlen(prefix)) == 0, "%s",
                (char *)b1.data);
  kz_buf_free(&b1);
  kz_buf_free(&b2);
  json_decref(m1);
  json_decref(m2);
  json_decref(m3);
}
END_TEST

START_TEST(test_build_refuses) {
  struct kz_prng prng;
  kz_prng_seed(&prng, 1);
  struct kz_kapi_error err = {{0}};
  json_t *sentinel = json_object();
  json_t *m = sentinel;

  /* A missing required field: an error, a reason and no object. */
  json_t *body = body_of("authn_req__register.json");
  json_object_del(body, "Auth-Realm");
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_AUTHN_REQ, &origin, &prng, body, &m, &err),
                   KZ_EPROTO);
  ck_assert_ptr_eq(m, sentinel);
  ck_assert_str_eq(err.reason, "authn_req: missing required field Auth-Realm");
  json_decref(body);

  /* A bad value. */
  body = body_of("route_resp__park.json");
  json_object_set_new(body, "Method", json_string("sigh"));
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_ROUTE_RESP, &origin, &prng, body, &m, &err),
                   KZ_EPROTO);
  ck_assert_ptr_eq(m, sentinel);
  ck_assert_str_eq(err.reason, "route_resp: Method must be one of bridge, park, "
                               "error, sms, plan, application: got 'sigh'");
  json_decref(body);

  /* A body claiming another type. */
  body = body_of("authn_req__register.json");
  json_object_set_new(body, "Event-Name", json_string("authn_resp"));
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_AUTHN_REQ, &origin, &prng, body, &m, &err),
                   KZ_EINVAL);
  json_object_set_new(body, "Event-Name", json_string("authn_req"));
  json_object_set_new(body, "Event-Category", json_string("dialplan"));
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_AUTHN_REQ, &origin, &prng, body, &m, &err),
                   KZ_EINVAL);
  ck_assert_ptr_eq(m, sentinel);
  json_decref(body);

  /* Types with several names need one from the body. */
  body = body_of("call_event__dtmf.json");
  json_object_del(body, "Event-Name");
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_CALL_EVENT, &origin, &prng, body, &m, &err),
                   KZ_EPROTO);
  ck_assert_str_eq(err.reason, "call_event: missing required field Event-Name");
  json_decref(body);

  /* Bad arguments. */
  struct kz_kapi_origin no_name = {NULL, "1", NULL, NULL};
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_REG_SYNC, &no_name, &prng, NULL, &m, &err),
                   KZ_EINVAL);
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_REG_SYNC, NULL, &prng, NULL, &m, &err),
                   KZ_EINVAL);
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_REG_SYNC, &origin, NULL, NULL, &m, &err),
                   KZ_EINVAL);
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_UNKNOWN, &origin, &prng, NULL, &m, &err),
                   KZ_EINVAL);
  json_t *arr = json_array();
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_REG_SYNC, &origin, &prng, arr, &m, &err),
                   KZ_EINVAL);
  json_decref(arr);
  ck_assert_ptr_eq(m, sentinel);
  json_decref(sentinel);
}
END_TEST

START_TEST(test_build_reply) {
  json_t *req = kz_bus_test_load("route_req__account.json");
  json_t *body = json_pack("{s:s, s:s, s:[]}", "Method", "park", "Pre-Park",
                           "none", "Routes");
  json_t *m = NULL;
  struct kz_kapi_error err = {{0}};
  ck_assert_int_eq(kz_kapi_build_reply(KZ_KAPI_ROUTE_RESP, &origin, req, body,
                                       &m, &err), 0);
  ck_assert_str_eq(json_string_value(json_object_get(m, "Msg-ID")),
                   "f3c2a1b0c9d8e7f6a5b4c3d2e1f0a9b8");
  ck_assert_str_eq(json_string_value(json_object_get(m, "Call-ID")),
                   "0a9c5e7d1f");
  ck_assert_int_eq(kz_kapi_validate(m, KZ_KAPI_ROUTE_RESP, &err), 0);
  /* The reply goes to the request's Server-ID queue. */
  struct kz_slice q = kz_bus_reply_queue(
      json_string_value(json_object_get(req, "Server-ID")));
  ck_assert(kz_slice_eq_cstr(q, "ecallmgr_fetch_q"));
  json_decref(m);

  /* A body Msg-ID cannot override the request's. */
  json_object_set_new(body, "Msg-ID", json_string("other"));
  ck_assert_int_eq(kz_kapi_build_reply(KZ_KAPI_ROUTE_RESP, &origin, req, body,
                                       &m, &err), 0);
  ck_assert_str_eq(json_string_value(json_object_get(m, "Msg-ID")),
                   "f3c2a1b0c9d8e7f6a5b4c3d2e1f0a9b8");
  json_decref(m);

  /* No Msg-ID to echo. */
  json_object_del(req, "Msg-ID");
  m = NULL;
  ck_assert_int_eq(kz_kapi_build_reply(KZ_KAPI_ROUTE_RESP, &origin, req, body,
                                       &m, &err), KZ_EPROTO);
  ck_assert_ptr_null(m);
  ck_assert_int_eq(kz_kapi_build_reply(KZ_KAPI_ROUTE_RESP, &origin, NULL, body,
                                       &m, &err), KZ_EINVAL);
  json_decref(body);
  json_decref(req);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Parsing                                                               */

static char *nest(size_t depth) {
  /* {"a":[[...[1]...]]} with depth levels in all. */
  char *s = malloc(2 * depth + 16);
  size_t n = 0;
  n += (size_t)sprintf(s, "{\"a\":");
  for (size_t i = 1; i < depth; i++) s[n++] = '[';
  s[n++] = '1';
  for (size_t i = 1; i < depth; i++) s[n++] = ']';
  s[n++] = '}';
  s[n] = 0;
  return s;
}

START_TEST(test_parse_limits) {
  struct kz_kapi_error err = {{0}};
  json_t *m = NULL;
  struct kz_kapi_limits lim = {0, 8};

  char *ok = nest(8);
  ck_assert_int_eq(kz_kapi_parse(ok, strlen(ok), &lim, &m, &err), 0);
  json_decref(m);
  m = NULL;
  char *deep = nest(9);
  ck_assert_int_eq(kz_kapi_parse(deep, strlen(deep), &lim, &m, &err), KZ_EPROTO);
  ck_assert_ptr_null(m);
  ck_assert_str_eq(err.reason, "JSON nests deeper than 8 levels (at byte 12)");
  free(deep);
  free(ok);

  /* Default depth 32, and far beyond jansson's own limit. */
  char *d33 = nest(33), *d100k = nest(100000);
  ck_assert_int_eq(kz_kapi_parse(d33, strlen(d33), NULL, &m, &err), KZ_EPROTO);
  ck_assert_int_eq(kz_kapi_parse(d100k, strlen(d100k), NULL, &m, &err),
                   KZ_EPROTO);
  ck_assert_ptr_null(m);
  free(d33);
  free(d100k);

  /* Brackets inside strings do not count. */
  const char *str = "{\"a\":\"[[[[[[[[[[[[{{{{{{{{\\\"[[[[\"}";
  ck_assert_int_eq(kz_kapi_parse(str, strlen(str), &lim, &m, &err), 0);
  json_decref(m);
  m = NULL;

  /* Size. */
  const char *msg = "{\"Event-Category\":\"directory\"}";
  struct kz_kapi_limits small = {10, 0};
  ck_assert_int_eq(kz_kapi_parse(msg, strlen(msg), &small, &m, &err),
                   KZ_EMSGSIZE);
  ck_assert_str_eq(err.reason, "message of 30 bytes exceeds the limit of 10");
  struct kz_kapi_limits exact = {30, 0};
  ck_assert_int_eq(kz_kapi_parse(msg, strlen(msg), &exact, &m, &err), 0);
  json_decref(m);
  m = NULL;
  /* Default size limit. */
  size_t big = KZ_KAPI_DEFAULT_MAX_SIZE + 1;
  char *huge = malloc(big);
  memset(huge, ' ', big);
  ck_assert_int_eq(kz_kapi_parse(huge, big, NULL, &m, &err), KZ_EMSGSIZE);
  free(huge);
  ck_assert_ptr_null(m);
}
END_TEST

START_TEST(test_parse_errors) {
  static const struct {
    const char *text;
    size_t len; /* 0: strlen */
    const char *reason_prefix;
  } cases[] = {
      {"", 0, "invalid JSON: "},
      {"{", 0, "invalid JSON: "},
      {"{\"a\":1} x", 0, "invalid JSON: end of file expected"},
      {"{\"a\":1,\"a\":2}", 0, "invalid JSON: duplicate object key"},
      {"[1,2]", 0, "a message must be a JSON object, not an array"},
      {"\"str\"", 0, "invalid JSON: "},
      {"{\"a\":\"\\u0000\"}", 0, "invalid JSON: "},
      {"{\"a\":\"\xff\"}", 0, "invalid JSON: "},
      {"{\"a\":1}\0{", 9, "invalid JSON: "},
      {"{\n\"a\": tru}", 0, "invalid JSON: invalid token near 'tru' (line 2"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct kz_kapi_error err = {{0}};
    json_t *m = NULL;
    size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
    ck_assert_msg(kz_kapi_parse(cases[i].text, len, NULL, &m, &err) == KZ_EPROTO,
                  "case %zu", i);
    ck_assert_ptr_null(m);
    ck_assert_msg(strncmp(err.reason, cases[i].reason_prefix,
                          strlen(cases[i].reason_prefix)) == 0,
                  "case %zu: %s", i, err.reason);
  }
  json_t *m = NULL;
  ck_assert_int_eq(kz_kapi_parse(NULL, 1, NULL, &m, NULL), KZ_EINVAL);
  ck_assert_int_eq(kz_kapi_parse("{}", 2, NULL, NULL, NULL), KZ_EINVAL);
}
END_TEST

START_TEST(test_decode) {
  const char *good =
      "{\"Event-Category\":\"directory\",\"Event-Name\":\"reg_flush\","
      "\"App-Name\":\"crossbar\",\"App-Version\":\"4.3\",\"Msg-ID\":\"m1\","
      "\"Realm\":\"acme.sip.example.com\"}";
  struct kz_kapi_error err = {{0}};
  json_t *m = NULL;
  enum kz_kapi_type t = KZ_KAPI_UNKNOWN;
  ck_assert_int_eq(kz_kapi_decode(good, strlen(good), NULL, KZ_KAPI_UNKNOWN, &m,
                                  &t, &err), 0);
  ck_assert_int_eq(t, KZ_KAPI_REG_FLUSH);
  json_decref(m);
  m = NULL;
  ck_assert_int_eq(kz_kapi_decode(good, strlen(good), NULL, KZ_KAPI_REG_FLUSH,
                                  &m, NULL, &err), 0);
  json_decref(m);
  m = NULL;
  /* Expecting another type. */
  ck_assert_int_eq(kz_kapi_decode(good, strlen(good), NULL, KZ_KAPI_REG_QUERY,
                                  &m, &t, &err), KZ_EPROTO);
  ck_assert_str_eq(err.reason,
                   "reg_query: Event-Name must be 'reg_query': got 'reg_flush'");
  ck_assert_ptr_null(m);
  /* Unknown types. */
  const char *unk = "{\"Event-Category\":\"presence\",\"Event-Name\":\"update\"}";
  ck_assert_int_eq(kz_kapi_decode(unk, strlen(unk), NULL, KZ_KAPI_UNKNOWN, &m,
                                  &t, &err), KZ_EPROTO);
  ck_assert_str_eq(err.reason, "unknown message type presence/update");
  const char *none = "{\"a\":1}";
  ck_assert_int_eq(kz_kapi_decode(none, strlen(none), NULL, KZ_KAPI_UNKNOWN, &m,
                                  &t, &err), KZ_EPROTO);
  ck_assert_str_eq(err.reason,
                   "message has no string Event-Category/Event-Name");
  ck_assert_ptr_null(m);
  ck_assert_int_eq(kz_kapi_decode(good, strlen(good), NULL, KZ_KAPI_TYPE_COUNT,
                                  &m, &t, &err), KZ_EINVAL);
}
END_TEST

START_TEST(test_dump) {
  json_t *m = json_pack("{s:s, s:i, s:[s, b], s:{}}", "b", "x\"y", "a", 1, "c",
                        "é", 1, "d");
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_buf_append_cstr(&b, ">"), 0);
  ck_assert_int_eq(kz_kapi_dump(m, &b), 0);
  /* Appended, compact, insertion order, UTF-8 kept. */
  ck_assert_str_eq((char *)b.data,
                   ">{\"b\":\"x\\\"y\",\"a\":1,\"c\":[\"é\",true],\"d\":{}}");
  ck_assert_int_eq(kz_kapi_dump(NULL, &b), KZ_EINVAL);
  ck_assert_int_eq(kz_kapi_dump(m, NULL), KZ_EINVAL);
  /* Out of memory leaves the buffer as it was. */
  size_t len = b.len;
  kz_mem_fail_after(0);
  int rc = kz_kapi_dump(m, &b);
  kz_mem_fail_after(-1);
  if (rc) {
    ck_assert_int_eq(rc, KZ_ENOMEM);
    ck_assert_uint_eq(b.len, len);
    ck_assert_uint_eq(strlen((char *)b.data), len);
  }
  kz_buf_free(&b);
  json_decref(m);
}
END_TEST

/* kz_kapi_dump writes what jansson's compact dump writes, byte for byte:
 * the corpus, and values chosen for every escaping and number rule. */
static void assert_dump_like_jansson(const json_t *v, const char *what) {
  char *want = json_dumps(v, JSON_COMPACT);
  ck_assert_msg(want != NULL, "%s: jansson cannot dump it", what);
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_kapi_dump(v, &b), 0);
  ck_assert_msg(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0,
                "%s:\n kz      %s\n jansson %s", what, (char *)b.data, want);
  kz_buf_free(&b);
  free(want);
}

static json_t *nested_arrays(int depth) {
  json_t *v = json_string("core");
  for (int i = 0; i < depth; i++) {
    json_t *a = json_array();
    json_array_append_new(a, v);
    json_array_append_new(a, json_integer(i));
    v = a;
  }
  return v;
}

START_TEST(test_dump_like_jansson) {
  DIR *dir;
  char path[1024];
  kz_test_source_path(path, sizeof path, "impl/bus/fuzz/corpus");
  ck_assert_ptr_nonnull(dir = opendir(path));
  struct dirent *de;
  int n = 0;
  while ((de = readdir(dir))) {
    if (de->d_name[0] == '.') continue;
    json_t *m = kz_bus_test_load(de->d_name);
    assert_dump_like_jansson(m, de->d_name);
    json_decref(m);
    n++;
  }
  closedir(dir);
  ck_assert_int_gt(n, 20);

  json_t *o = json_object();
  static const char all_ascii_ctl[] =
      "\x01\x02\x03\x04\x05\x06\x07\b\t\n\x0b\f\r\x0e\x0f\x10\x11\x12\x13"
      "\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f \"\\/\x7f";
  json_object_set_new(o, "ctl", json_string(all_ascii_ctl));
  json_object_set_new(o, "nul", json_stringn("a\0b", 3));
  json_object_set_new(o, "utf8", json_string("é € 😀 ÿ"));
  json_object_set_new(o, "mixed", json_string("\"é\"\n\t😀\\x"));
  json_object_set_new(o, "", json_string(""));
  json_object_setn_new(o, "key\"with\\odd\nbytes", 18, json_true());
  json_object_setn_new(o, "k\0nul", 5, json_false());
  json_object_set_new(o, "null", json_null());
  json_object_set_new(o, "ints", json_pack("[I,I,I,I,I]", (json_int_t)0,
                                           (json_int_t)-1, (json_int_t)42,
                                           (json_int_t)INT64_MAX,
                                           (json_int_t)INT64_MIN));
  json_object_set_new(o, "reals", json_pack("[f,f,f,f,f]", 1.5, -0.0, 1e300,
                                            0.1, 100.0));
  json_object_set_new(o, "empty", json_pack("[{},[],{s:[]}]", "x"));
  json_object_set_new(o, "deep", nested_arrays(100)); /* past kz's own writer */
  char long_str[5000];
  for (size_t i = 0; i < sizeof long_str - 1; i++)
    long_str[i] = (char)(i % 7 == 0 ? '\n' : 'a' + (char)(i % 26));
  long_str[sizeof long_str - 1] = 0;
  json_object_set_new(o, "long", json_string(long_str));
  assert_dump_like_jansson(o, "crafted");
  json_t *arr = json_pack("[o, s]", json_incref(o), "top-level array");
  assert_dump_like_jansson(arr, "array");
  json_decref(arr);
  json_decref(o);
}
END_TEST

/* What jansson refuses to write, kz refuses too, leaving the buffer as
 * it was: invalid UTF-8, a container inside itself, scalars at the top. */
START_TEST(test_dump_refusals) {
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_buf_append_cstr(&b, "keep"), 0);
  json_t *bad = json_pack("{s:o}", "a", json_stringn_nocheck("x\xc3(", 3));
  ck_assert_ptr_null(json_dumps(bad, JSON_COMPACT));
  ck_assert_int_eq(kz_kapi_dump(bad, &b), KZ_ENOMEM);
  ck_assert_str_eq((char *)b.data, "keep");
  json_decref(bad);

  json_t *a = json_array(), *inner = json_object();
  json_array_append(a, inner);
  json_object_set(inner, "loop", a); /* a -> inner -> a */
  ck_assert_ptr_null(json_dumps(a, JSON_COMPACT));
  ck_assert_int_eq(kz_kapi_dump(a, &b), KZ_ENOMEM);
  ck_assert_str_eq((char *)b.data, "keep");
  json_object_del(inner, "loop"); /* break the cycle to free it */
  json_decref(inner);
  json_decref(a);

  json_t *str = json_string("x");
  ck_assert_int_eq(kz_kapi_dump(str, &b), KZ_ENOMEM);
  ck_assert_uint_eq(b.len, 4);
  json_decref(str);
  kz_buf_free(&b);
}
END_TEST

/* kz_kapi_parse reads messages itself and hands anything unusual to
 * jansson: either way the result is jansson's, value for value, key
 * order included, and a refusal gives jansson's reason. */
static void assert_parse_like_jansson(const char *text, size_t len) {
  json_error_t jerr;
  json_t *want = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  json_t *got = NULL;
  struct kz_kapi_error err = {{0}};
  int rc = kz_kapi_parse(text, len, NULL, &got, &err);
  if (want && json_is_object(want)) {
    ck_assert_msg(rc == 0, "%.*s: %s", (int)len, text, err.reason);
    ck_assert_msg(json_equal(want, got), "%.*s: values differ", (int)len, text);
    char *a = json_dumps(want, JSON_COMPACT), *b = json_dumps(got, JSON_COMPACT);
    ck_assert_str_eq(a, b); /* same key order, same types */
    free(a);
    free(b);
  } else {
    ck_assert_msg(rc == KZ_EPROTO, "%.*s: accepted", (int)len, text);
    ck_assert_ptr_null(got);
    char reason[256];
    if (want)
      snprintf(reason, sizeof reason,
               "a message must be a JSON object, not an array");
    else
      snprintf(reason, sizeof reason, "invalid JSON: %s (line %d, column %d)",
               jerr.text, jerr.line, jerr.column);
    ck_assert_str_eq(err.reason, reason);
  }
  json_decref(want);
  json_decref(got);
}

START_TEST(test_parse_like_jansson) {
  static const char *const texts[] = {
      "{}",
      " \t\r\n{ \"a\" : 1 , \"b\" : [ ] , \"c\" : { } } \n",
      "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
      "{\"a\":\"\\u00e9\\u20AC\\ud83d\\ude00\\u0041\"}",
      "{\"\\u00e9\\n\":\"key with escapes\",\"plain\":\"\\t\"}",
      "{\"a\":\"é€😀\",\"b\":\"\x7f\"}",
      "{\"i\":[0,-0,1,-1,123456789012345678,-123456789012345678]}",
      "{\"i\":9223372036854775807,\"j\":-9223372036854775808}",
      "{\"i\":9223372036854775808}",
      "{\"i\":-9223372036854775809}",
      "{\"r\":[1.5,-0.0,1e3,1E-3,2e+2,0.1]}",
      "{\"r\":1e999}",
      "{\"t\":true,\"f\":false,\"n\":null}",
      "{\"a\":{\"b\":{\"c\":[{\"d\":[]}]}}}",
      "[{\"a\":1}]",
      "{\"a\":1,\"a\":1}",
      "{\"a\":{\"x\":1,\"x\":2}}",
      "{\"a\":\"\\u0000\"}",
      "{\"\\u0000\":1}",
      "{\"a\":\"\\ud83d\"}",
      "{\"a\":\"\\ud83d\\u0041\"}",
      "{\"a\":\"\\ude00\"}",
      "{\"a\":\"\\u12\"}",
      "{\"a\":\"\\x\"}",
      "{\"a\":\"tab\there\"}",
      "{\"a\":\"\xc3\x28\"}",
      "{\"a\":\"\xed\xa0\x80\"}",
      "{\"a\":\"\xe0\x80\xaf\"}",
      "{\"a\":\"\xf4\x90\x80\x80\"}",
      "{\"a\":\"\xc3\"}",
      "{\"a\":truex}",
      "{\"a\":tru}",
      "{\"a\":nul}",
      "{\"a\":01}",
      "{\"a\":-}",
      "{\"a\":1.}",
      "{\"a\":1e}",
      "{\"a\":+1}",
      "{\"a\":1,}",
      "{\"a\" 1}",
      "{a:1}",
      "{\"a\":[1,]}",
      "{\"a\":[1 2]}",
      "{\"a\":1}}",
      "{\"a\":1} {}",
      "{\"a\":\"unterminated}",
      "{\"a\":[",
      "",
      "   ",
      "\"just a string\"",
      "42",
  };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
    assert_parse_like_jansson(texts[i], strlen(texts[i]));
  /* Bytes a C string cannot hold. */
  assert_parse_like_jansson("{\"a\":1}\0", 8);
  assert_parse_like_jansson("{\"a\":\"x\0y\"}", 11);
  /* Every prefix of a real message: all but the whole one are refused
   * exactly as jansson refuses them. */
  json_t *m = kz_bus_test_load("route_resp__bridge.json");
  char *text = json_dumps(m, JSON_COMPACT);
  for (size_t l = 0; l <= strlen(text); l++) assert_parse_like_jansson(text, l);
  free(text);
  /* The corpus, as it is on disk (indented) and compact. */
  DIR *dir;
  char path[1024];
  kz_test_source_path(path, sizeof path, "impl/bus/fuzz/corpus");
  ck_assert_ptr_nonnull(dir = opendir(path));
  struct dirent *de;
  while ((de = readdir(dir))) {
    if (de->d_name[0] == '.') continue;
    char file[1400];
    snprintf(file, sizeof file, "%s/%s", path, de->d_name);
    FILE *f = fopen(file, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[256 * 1024];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_parse_like_jansson(buf, n);
    json_t *v = json_loadb(buf, n, 0, NULL);
    char *c = json_dumps(v, JSON_COMPACT);
    assert_parse_like_jansson(c, strlen(c));
    free(c);
    json_decref(v);
  }
  closedir(dir);
  json_decref(m);
}
END_TEST

/* Allocation failures while reading fall back to jansson and never leak
 * (jansson's own allocations are not kz's to fail). */
START_TEST(test_parse_alloc_failures) {
  const char *text = "{\"a\":\"esc\\naped\",\"\\u00e9\":[1,{\"b\":null}]}";
  for (int k = 0; k < 8; k++) {
    json_t *m = NULL;
    struct kz_kapi_error err = {{0}};
    kz_mem_fail_after(k);
    int rc = kz_kapi_parse(text, strlen(text), NULL, &m, &err);
    kz_mem_fail_after(-1);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(json_integer_value(json_array_get(
                         json_object_get(m, "\xc3\xa9"), 0)), 1);
    json_decref(m);
  }
}
END_TEST

/* build shares the body's values with the message instead of copying
 * them, and leaves the body as it was. */
START_TEST(test_build_shares_body) {
  const struct kz_kapi_origin px = {"kz_proxy", "0.1.0", "proxy@h", NULL};
  struct kz_prng prng;
  kz_prng_seed(&prng, 3);
  json_t *body = kz_bus_test_load("reg_success__registered.json");
  /* As a role passes it: no envelope of its own but App-Name, which
   * the origin overrides. */
  json_object_del(body, "Msg-ID");
  json_object_set_new(body, "App-Name", json_string("from-body"));
  json_t *before = json_deep_copy(body);
  json_t *m = NULL;
  struct kz_kapi_error err;
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_REG_SUCCESS, &px, &prng, body, &m, &err),
                   0);
  ck_assert(json_equal(body, before));
  ck_assert_str_eq(json_string_value(json_object_get(m, "App-Name")), "kz_proxy");
  const char *key;
  json_t *v;
  json_object_foreach(body, key, v) {
    if (!strcmp(key, "App-Name") || !strcmp(key, "App-Version") ||
        !strcmp(key, "Node") || !strcmp(key, "Event-Category") ||
        !strcmp(key, "Event-Name"))
      continue;
    ck_assert_msg(json_object_get(m, key) == v, "%s was copied", key);
  }
  /* The envelope leads, then the body's fields in the body's order. */
  void *it = json_object_iter(m);
  const char *lead[] = {"Event-Category", "Event-Name", "App-Name",
                        "App-Version", "Msg-ID", "Node"};
  for (size_t i = 0; i < sizeof lead / sizeof lead[0]; i++) {
    ck_assert_str_eq(json_object_iter_key(it), lead[i]);
    it = json_object_iter_next(m, it);
  }
  json_decref(m);
  json_decref(before);
  json_decref(body);
}
END_TEST

void kz_bus_test_add_kapi(Suite *s) {
  TCase *tc = kz_tcase(s, "kapi_valid", 60);
  tcase_add_test(tc, test_examples_valid);
  tcase_add_test(tc, test_validate_args);
  tcase_add_test(tc, test_identify);
  tc = kz_tcase(s, "kapi_violations", 60);
  tcase_add_loop_test(tc, test_violations, 0,
                      (int)(sizeof violations / sizeof violations[0]));
  tc = kz_tcase(s, "kapi_build", 30);
  tcase_add_test(tc, test_build_fills_envelope);
  tcase_add_test(tc, test_build_msg_id_deterministic);
  tcase_add_test(tc, test_build_refuses);
  tcase_add_test(tc, test_build_reply);
  tcase_add_test(tc, test_build_shares_body);
  tc = kz_tcase(s, "kapi_parse", 30);
  tcase_add_test(tc, test_parse_limits);
  tcase_add_test(tc, test_parse_errors);
  tcase_add_test(tc, test_decode);
  tcase_add_test(tc, test_dump);
  tc = kz_tcase(s, "kapi_json_like_jansson", 60);
  tcase_add_test(tc, test_dump_like_jansson);
  tcase_add_test(tc, test_dump_refusals);
  tcase_add_test(tc, test_parse_like_jansson);
  tcase_add_test(tc, test_parse_alloc_failures);
}
