/* test_keys.c — exchanges, routing-key escaping and builders, reply queues and RabbitMQ topic matching. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/bus.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz_test.h"
#include "test_bus.h"

START_TEST(test_exchanges) {
  static const struct {
    const char *name;
    enum kz_bus_exchange_type type;
  } want[] = {
      {"targeted", KZ_BUS_EX_DIRECT},   {"callctl", KZ_BUS_EX_DIRECT},
      {"callevt", KZ_BUS_EX_TOPIC},     {"resources", KZ_BUS_EX_TOPIC},
      {"callmgr", KZ_BUS_EX_TOPIC},     {"conference", KZ_BUS_EX_TOPIC},
      {"monitor", KZ_BUS_EX_TOPIC},     {"configuration", KZ_BUS_EX_TOPIC},
      {"kapps", KZ_BUS_EX_TOPIC},       {"presence", KZ_BUS_EX_TOPIC},
      {"notifications", KZ_BUS_EX_TOPIC}, {"sysconf", KZ_BUS_EX_TOPIC},
      {"bookkeepers", KZ_BUS_EX_TOPIC}, {"nodes", KZ_BUS_EX_FANOUT},
      {"registrar", KZ_BUS_EX_TOPIC},   {"leader", KZ_BUS_EX_TOPIC},
      {"tasks", KZ_BUS_EX_TOPIC},       {"omnipresence", KZ_BUS_EX_TOPIC},
      {"cdr", KZ_BUS_EX_TOPIC},         {"frontier", KZ_BUS_EX_DIRECT},
      {"frontier_acl", KZ_BUS_EX_TOPIC},
  };
  size_t n = 0;
  const struct kz_bus_exchange *all = kz_bus_exchanges(&n);
  ck_assert_uint_eq(n, sizeof want / sizeof want[0]);
  for (size_t i = 0; i < n; i++) {
    const struct kz_bus_exchange *e = kz_bus_exchange_find(want[i].name);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->type, want[i].type);
    ck_assert_ptr_nonnull(e->use);
    /* Names are unique. */
    for (size_t j = i + 1; j < n; j++)
      ck_assert_str_ne(all[i].name, all[j].name);
  }
  ck_assert_ptr_null(kz_bus_exchange_find("callmgr2"));
  ck_assert_ptr_null(kz_bus_exchange_find(""));
  ck_assert_ptr_null(kz_bus_exchange_find(NULL));
  ck_assert_str_eq(kz_bus_exchange_type_name(KZ_BUS_EX_DIRECT), "direct");
  ck_assert_str_eq(kz_bus_exchange_type_name(KZ_BUS_EX_TOPIC), "topic");
  ck_assert_str_eq(kz_bus_exchange_type_name(KZ_BUS_EX_FANOUT), "fanout");
  ck_assert_str_eq(kz_bus_exchange_type_name((enum kz_bus_exchange_type)0), "?");
}
END_TEST

/* kz_amqp_util:encode/1 cases: the first six are Kazoo's own eunit
 * vectors (encode_key_test); the rest are derived from its rules. */
static const struct {
  const char *in;
  size_t len; /* 0: strlen */
  const char *out;
} enc_cases[] = {
    {"#", 0, "#"},
    {"*", 0, "*"},
    {"key", 0, "key"},
    {"routing.key", 0, "routing%2Ekey"},
    {"long.routing.key", 0, "long%2Erouting%2Ekey"},
    {"test&.192. 168. 5. 5#", 0, "test%26%2E192%2E+168%2E+5%2E+5%23"},
    {"", 0, ""},
    {"**", 0, "%2A%2A"},
    {"a*", 0, "a%2A"},
    {"#a", 0, "%23a"},
    {".", 0, "%2E"},
    {"a+b", 0, "a%2Bb"},
    {"100%", 0, "100%25"},
    {"-~_AZaz09", 0, "-~_AZaz09"},
    {"dev1001@acme.sip.example.com", 0, "dev1001%40acme%2Esip%2Eexample%2Ecom"},
    {"caf\xc3\xa9", 0, "caf%C3%A9"},
    {"\xe2\x98\x8e 1", 0, "%E2%98%8E+1"},
    {"a\0b", 3, "a%00b"},
    {"/\\:;", 0, "%2F%5C%3A%3B"},
    {"\x7f\x80\xff", 0, "%7F%80%FF"},
};

START_TEST(test_encode) {
  for (size_t i = 0; i < sizeof enc_cases / sizeof enc_cases[0]; i++) {
    size_t len = enc_cases[i].len ? enc_cases[i].len : strlen(enc_cases[i].in);
    struct kz_buf b;
    kz_buf_init(&b);
    ck_assert_int_eq(kz_buf_append_cstr(&b, "p."), 0);
    ck_assert_int_eq(kz_bus_key_encode(&b, enc_cases[i].in, len), 0);
    ck_assert_uint_eq(b.len, 2 + strlen(enc_cases[i].out));
    ck_assert_msg(memcmp(b.data + 2, enc_cases[i].out, b.len - 2) == 0,
                  "case %zu: got %s", i, (char *)b.data);
    /* No separator survives escaping; wildcards only alone. */
    ck_assert_ptr_null(memchr(b.data + 2, '.', b.len - 2));
    if (b.len - 2 != 1) {
      ck_assert_ptr_null(memchr(b.data + 2, '*', b.len - 2));
      ck_assert_ptr_null(memchr(b.data + 2, '#', b.len - 2));
    }
    /* Round trip. */
    struct kz_buf d;
    kz_buf_init(&d);
    ck_assert_int_eq(kz_bus_key_decode(&d, (char *)b.data + 2, b.len - 2), 0);
    ck_assert_uint_eq(d.len, len);
    ck_assert(len == 0 || memcmp(d.data, enc_cases[i].in, len) == 0);
    kz_buf_free(&d);
    kz_buf_free(&b);
  }
}
END_TEST

START_TEST(test_encode_roundtrip_all_bytes) {
  char all[256];
  for (int i = 0; i < 256; i++) all[i] = (char)i;
  struct kz_buf e, d;
  kz_buf_init(&e);
  kz_buf_init(&d);
  ck_assert_int_eq(kz_bus_key_encode(&e, all, sizeof all), 0);
  /* 65 safe bytes kept, space as '+', 190 escaped. */
  ck_assert_uint_eq(e.len, 65 + 1 + 190 * 3);
  ck_assert_int_eq(kz_bus_key_decode(&d, (char *)e.data, e.len), 0);
  ck_assert_uint_eq(d.len, sizeof all);
  ck_assert(memcmp(d.data, all, sizeof all) == 0);
  kz_buf_free(&e);
  kz_buf_free(&d);
}
END_TEST

START_TEST(test_decode_edges) {
  struct kz_buf d;
  kz_buf_init(&d);
  ck_assert_int_eq(kz_buf_append_cstr(&d, "keep"), 0);
  static const char *const bad[] = {"%", "%4", "%zz", "a%2", "%2G", "%%41"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_int_eq(kz_bus_key_decode(&d, bad[i], strlen(bad[i])), KZ_EPROTO);
    ck_assert_uint_eq(d.len, 4); /* untouched */
  }
  kz_buf_reset(&d);
  ck_assert_int_eq(kz_bus_key_decode(&d, "a%2eb%2Ec+d", 11), 0);
  ck_assert_str_eq((char *)d.data, "a.b.c d");
  kz_buf_reset(&d);
  ck_assert_int_eq(kz_bus_key_decode(&d, "*", 1), 0);
  ck_assert_str_eq((char *)d.data, "*");
  kz_buf_reset(&d);
  ck_assert_int_eq(kz_bus_key_decode(&d, "", 0), 0);
  ck_assert_uint_eq(d.len, 0);
  ck_assert_int_eq(kz_bus_key_decode(NULL, "a", 1), KZ_EINVAL);
  ck_assert_int_eq(kz_bus_key_encode(NULL, "a", 1), KZ_EINVAL);
  ck_assert_int_eq(kz_bus_key_encode(&d, NULL, 1), KZ_EINVAL);
  kz_buf_free(&d);
}
END_TEST

#define REALM "acme.sip.example.com"
#define EREALM "acme%2Esip%2Eexample%2Ecom"
#define ACC "3c3f0e5b2c1d4e6f8a9b0c1d2e3f4a5b"
#define DB "account%2F3c%2F3f%2F0e5b2c1d4e6f8a9b0c1d2e3f4a5b"

/* Takes &k, not k: the builder call in the first argument sets it, and
 * argument evaluation order is unspecified. */
static void expect_key(int rc, char **key, const char *want) {
  ck_assert_int_eq(rc, 0);
  ck_assert_str_eq(*key, want);
  kz_free(*key);
  *key = NULL;
}

START_TEST(test_key_builders) {
  char *k = NULL;
  expect_key(kz_bus_rk_authn_req(&k, REALM), &k, "authn.req." EREALM);
  expect_key(kz_bus_rk_authn_req(&k, NULL), &k, "authn.req.*");
  expect_key(kz_bus_rk_reg_success(&k, REALM, "dev1001"), &k,
             "registration.success." EREALM ".dev1001");
  expect_key(kz_bus_rk_reg_success(&k, NULL, NULL), &k,
             "registration.success.*.*");
  expect_key(kz_bus_rk_reg_query(&k, REALM, NULL), &k,
             "registration.query." EREALM ".*");
  expect_key(kz_bus_rk_reg_query(&k, REALM, "user one"), &k,
             "registration.query." EREALM ".user+one");
  expect_key(kz_bus_rk_reg_flush(&k, REALM), &k, "registration.flush." EREALM);
  expect_key(kz_bus_rk_route_req_account(&k, "audio", ACC), &k,
             "route.req.audio." ACC);
  expect_key(kz_bus_rk_route_req_realm(&k, "audio", REALM, "1001"), &k,
             "route.req.audio." EREALM ".1001");
  expect_key(kz_bus_rk_route_req_realm(&k, NULL, NULL, NULL), &k,
             "route.req.*.*.*");
  expect_key(kz_bus_rk_call_event(&k, "CHANNEL_DESTROY", "0a9c@10.0.0.1"), &k,
             "call.CHANNEL_DESTROY.0a9c%4010%2E0%2E0%2E1");
  expect_key(kz_bus_rk_call_event(&k, NULL, "77e1aa.01"), &k,
             "call.*.77e1aa%2E01");
  expect_key(kz_bus_rk_call_event(&k, "*", NULL), &k, "call.*.*");
  /* document_routing_key: db and type raw, id escaped, action prefixed. */
  expect_key(kz_bus_rk_doc_change(&k, "created", DB, "device", "9d1e"), &k,
             "doc_created." DB ".device.9d1e");
  expect_key(kz_bus_rk_doc_change(&k, "doc_edited", DB, "user", "user.jane"), &k,
             "doc_edited." DB ".user.user%2Ejane");
  expect_key(kz_bus_rk_doc_change(&k, "deleted", DB, "database", DB), &k,
             "db_deleted." DB ".database.account%252F3c%252F3f%252F"
             "0e5b2c1d4e6f8a9b0c1d2e3f4a5b");
  expect_key(kz_bus_rk_doc_change(&k, NULL, NULL, NULL, NULL), &k, "*.*.*.*");
  expect_key(kz_bus_rk_doc_change(&k, "edited", NULL, NULL, NULL), &k,
             "doc_edited.*.*.*");
  k = (char *)"untouched";
  ck_assert_int_eq(kz_bus_rk_authn_req(NULL, REALM), KZ_EINVAL);
  char long_action[80];
  memset(long_action, 'x', sizeof long_action - 1);
  long_action[sizeof long_action - 1] = 0;
  ck_assert_int_eq(kz_bus_rk_doc_change(&k, long_action, "db", "t", "i"),
                   KZ_EINVAL);
  ck_assert_str_eq(k, "untouched");
}
END_TEST

/* Allocation failure at every step: an error and nothing returned, then
 * success once allocations are allowed, and nothing leaked (the leak
 * check fixture counts). */
START_TEST(test_key_builders_alloc_failure) {
  int failures = 0;
  for (int64_t f = 0; f < 50; f++) {
    char *k = (char *)"untouched";
    kz_mem_fail_after(f);
    int rc = kz_bus_rk_reg_success(&k, REALM, "dev1001");
    kz_mem_fail_after(-1);
    if (rc == 0) {
      ck_assert_str_eq(k, "registration.success." EREALM ".dev1001");
      kz_free(k);
      break;
    }
    ck_assert_int_eq(rc, KZ_ENOMEM);
    ck_assert_str_eq(k, "untouched");
    failures++;
  }
  ck_assert_int_gt(failures, 0);
  json_t *m = kz_bus_test_load("authn_req__invite_ip_realm.json");
  for (int64_t f = 0; f < 50; f++) {
    char *k = NULL;
    kz_mem_fail_after(f);
    int rc = kz_bus_routing_key(m, KZ_KAPI_AUTHN_REQ, &k, NULL);
    kz_mem_fail_after(-1);
    if (rc == 0) {
      ck_assert_str_eq(k, "authn.req." EREALM);
      kz_free(k);
      break;
    }
    ck_assert_int_eq(rc, KZ_ENOMEM);
    ck_assert_ptr_null(k);
  }
  json_decref(m);
}
END_TEST

/* Keys from whole messages, hand-derived from Kazoo's publish_* code. */
static const struct {
  const char *file;
  enum kz_kapi_type type;
  const char *set_field; /* optional tweak: field = JSON value */
  const char *set_val;
  const char *key; /* NULL: refused with KZ_EINVAL */
} msg_keys[] = {
    {"authn_req__register.json", KZ_KAPI_AUTHN_REQ, NULL, NULL,
     "authn.req." EREALM},
    {"authn_req__register.json", KZ_KAPI_AUTHN_REQ, "Auth-Realm",
     "\"ACME.Sip.Example.COM\"", "authn.req." EREALM},
    {"authn_req__invite_ip_realm.json", KZ_KAPI_AUTHN_REQ, NULL, NULL,
     "authn.req." EREALM},
    {"authn_req__invite_ip_realm.json", KZ_KAPI_AUTHN_REQ, "Auth-Realm",
     "\"2001:db8::1\"", "authn.req." EREALM},
    {"authn_req__invite_ip_realm.json", KZ_KAPI_AUTHN_REQ, "Auth-Realm",
     "\"203.0.113.256\"", "authn.req.203%2E0%2E113%2E256"},
    {"authn_req__invite_ip_realm.json", KZ_KAPI_AUTHN_REQ, "To", "\"sip:1002\"",
     NULL},
    {"reg_success__registered.json", KZ_KAPI_REG_SUCCESS, NULL, NULL,
     "registration.success." EREALM ".dev1001"},
    {"reg_query__realm_user.json", KZ_KAPI_REG_QUERY, NULL, NULL,
     "registration.query." EREALM ".dev1002"},
    {"reg_query__realm_only.json", KZ_KAPI_REG_QUERY, NULL, NULL,
     "registration.query." EREALM ".*"},
    {"reg_query__realm_only.json", KZ_KAPI_REG_QUERY, "Realm", "null", NULL},
    {"reg_flush__device_edited.json", KZ_KAPI_REG_FLUSH, NULL, NULL,
     "registration.flush." EREALM},
    {"reg_sync__restart.json", KZ_KAPI_REG_SYNC, NULL, NULL,
     "registration.sync"},
    {"route_req__account.json", KZ_KAPI_ROUTE_REQ, NULL, NULL,
     "route.req.audio." ACC},
    {"route_req__account.json", KZ_KAPI_ROUTE_REQ, "Account-ID",
     "\"top.level\"", "route.req.audio.top%2Elevel"},
    {"route_req__realm.json", KZ_KAPI_ROUTE_REQ, NULL, NULL,
     "route.req.audio.carrier%2Eexample%2Enet.%2B14085550123"},
    {"route_req__realm.json", KZ_KAPI_ROUTE_REQ, "Resource-Type", "\"sms\"",
     "route.req.sms.carrier%2Eexample%2Enet.%2B14085550123"},
    {"route_req__realm.json", KZ_KAPI_ROUTE_REQ, "Resource-Type", "null",
     NULL},
    {"call_event__channel_create.json", KZ_KAPI_CALL_EVENT, NULL, NULL,
     "call.CHANNEL_CREATE.0a9c5e7d1f"},
    {"call_event__dtmf.json", KZ_KAPI_CALL_EVENT, "Call-ID", "\"a.b@c\"",
     "call.DTMF.a%2Eb%40c"},
    {"call_event__channel_destroy.json", KZ_KAPI_CALL_EVENT, NULL, NULL,
     "call.CHANNEL_DESTROY.0a9c5e7d1f"},
    {"doc_change__doc_created.json", KZ_KAPI_DOC_CHANGE, NULL, NULL,
     "doc_created." DB ".device.9d1e0a7c6b5d4e3f2a1b0c9d8e7f6a5b"},
    {"doc_change__doc_deleted.json", KZ_KAPI_DOC_CHANGE, NULL, NULL,
     "doc_deleted." DB ".user.user%2Ejane"},
    {"offnet_req__bridge.json", KZ_KAPI_OFFNET_REQ, NULL, NULL,
     "offnet.resource.req"},
    {"advertise__ecallmgr.json", KZ_KAPI_NODES_ADVERTISE, NULL, NULL, ""},
    {"authn_resp__password.json", KZ_KAPI_AUTHN_RESP, NULL, NULL, NULL},
    {"route_resp__park.json", KZ_KAPI_ROUTE_RESP, NULL, NULL, NULL},
    {"route_win__callflow.json", KZ_KAPI_ROUTE_WIN, NULL, NULL, NULL},
    {"offnet_resp__busy.json", KZ_KAPI_OFFNET_RESP, NULL, NULL, NULL},
    {"call_command__answer.json", KZ_KAPI_CALL_COMMAND, NULL, NULL, NULL},
};

START_TEST(test_keys_from_messages) {
  for (size_t i = 0; i < sizeof msg_keys / sizeof msg_keys[0]; i++) {
    json_t *m = kz_bus_test_load(msg_keys[i].file);
    if (msg_keys[i].set_field) {
      json_error_t jerr;
      json_object_set_new(m, msg_keys[i].set_field,
                          json_loads(msg_keys[i].set_val, JSON_DECODE_ANY, &jerr));
    }
    char *k = NULL;
    struct kz_kapi_error err = {{0}};
    int rc = kz_bus_routing_key(m, msg_keys[i].type, &k, &err);
    if (msg_keys[i].key) {
      ck_assert_msg(rc == 0, "case %zu: %s", i, err.reason);
      ck_assert_msg(strcmp(k, msg_keys[i].key) == 0, "case %zu: %s", i, k);
      kz_free(k);
    } else {
      ck_assert_msg(rc == KZ_EINVAL, "case %zu: rc %d", i, rc);
      ck_assert_ptr_null(k);
      ck_assert_msg(strncmp(err.reason, kz_kapi_type_name(msg_keys[i].type),
                            strlen(kz_kapi_type_name(msg_keys[i].type))) == 0,
                    "case %zu: %s", i, err.reason);
    }
    json_decref(m);
  }
  char *k = NULL;
  ck_assert_int_eq(kz_bus_routing_key(NULL, KZ_KAPI_REG_SYNC, &k, NULL),
                   KZ_EINVAL);
}
END_TEST

START_TEST(test_reply_queue) {
  static const struct {
    const char *sid, *queue;
  } cases[] = {
      {"pid://<0.1.0>/ecallmgr_fetch_q", "ecallmgr_fetch_q"},
      {"consumer://<0.5.0>/q1", "q1"},
      {"pid://<0.9.0>/callctl-0a9c", "callctl-0a9c"},
      {"kamailio-q-1", "kamailio-q-1"},
      {"targeted.callflow-q", "targeted.callflow-q"},
      {"a/b", "a/b"},
      {"pid://", ""},
      {"pid://<0.1.0>/", ""},
      {"", ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct kz_slice q = kz_bus_reply_queue(cases[i].sid);
    ck_assert_msg(kz_slice_eq_cstr(q, cases[i].queue), "case %zu", i);
  }
  ck_assert_uint_eq(kz_bus_reply_queue(NULL).len, 0);
}
END_TEST

/* Expected results derived by hand from RabbitMQ's topic rules (and
 * cross-checked against the binding table of rabbit's own topic tests). */
static const struct {
  const char *pattern, *key;
  bool match;
} topics[] = {
    {"#", "", true},
    {"#", "a", true},
    {"#", "a.b.c", true},
    {"#", ".", true},
    {"*", "", false},
    {"*", "a", true},
    {"*", "a.b", false},
    {"*", ".", false},
    {"", "", true},
    {"", "a", false},
    {"a", "", false},
    {"a.b.c", "a.b.c", true},
    {"a.b.c", "a.b", false},
    {"a.b", "a.b.", false},
    {"A", "a", false},
    {"a.*.c", "a.b.c", true},
    {"a.*.c", "a.c", false},
    {"a.*.c", "a..c", true},
    {"a.#.b", "a.b", true},
    {"a.#.b", "a.x.y.b", true},
    {"a.#.b", "a.b.b", true},
    {"a.#.b", "a.b.c", false},
    {"a.#.#.b", "a.b", true},
    {"*.*", "a.b", true},
    {"*.*", "a", false},
    {"*.*", "a.b.c", false},
    {"*.*", ".", true},
    {"a.*", "a.", true},
    {"a.*", "a", false},
    {"a..b", "a..b", true},
    {"a..b", "a.b", false},
    {"a.#", "a", true},
    {"a.#", "b", false},
    {"#.b", "a.b.b", true},
    {"#.b", "b.a", false},
    {"#.a", "a.a.a", true},
    {"#.*.#", "", false},
    {"#.*.#", "x", true},
    {"*.#", "", false},
    {"*.#", "a.b.c", true},
    {"#.#.#", "", true},
    {"*.b.c", "b.b.c", true},
    {"#.b.#", "a.b.c", true},
    {"#.b.#", "vodka.gin", false},
    {"#.a.#.b", "x.a.y.b.z", false},
    {"#.a.#.b", "x.a.y.a.b", true},
    {"vodka.martini", "vodka.martini", true},
    {"vodka.*", "vodka.gin.tonic", false},
    {"call.*.0a9c", "call.CHANNEL_CREATE.0a9c", true},
    {"call.*.*", "call.CHANNEL_CREATE.0a9c%2E1", true},
    {"call.CHANNEL_DESTROY.*", "call.CHANNEL_CREATE.x", false},
    {"registration.success.*.*",
     "registration.success.acme%2Esip%2Eexample%2Ecom.dev1001", true},
    {"authn.req.*", "authn.req.acme.sip", false},
    {"doc_*.account%2F3c.*.*", "doc_created.account%2F3c.user.u1", false},
    {"*.account%2F3c.*.*", "doc_created.account%2F3c.user.u1", true},
    {"a*", "ab", false},
    {"a#", "a#", true},
};

START_TEST(test_topic_match) {
  for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
    ck_assert_msg(kz_bus_topic_match_cstr(topics[i].pattern, topics[i].key) ==
                      topics[i].match,
                  "case %zu: '%s' vs '%s'", i, topics[i].pattern,
                  topics[i].key);
  /* Lengths are honoured: no NUL needed, none read past. */
  ck_assert(kz_bus_topic_match("a.bXYZ", 3, "a.b", 3));
  ck_assert(!kz_bus_topic_match("a.b", 3, "a.bc", 4));
  ck_assert(kz_bus_topic_match(NULL, 0, NULL, 0));
  ck_assert(!kz_bus_topic_match(NULL, 1, "a", 1));
  ck_assert(!kz_bus_topic_match_cstr(NULL, "a"));
  /* Every key built by the key builders matches itself. */
  char *k = NULL;
  ck_assert_int_eq(kz_bus_rk_reg_success(&k, "a.b#c*d", "u.1"), 0);
  ck_assert(kz_bus_topic_match_cstr(k, k));
  ck_assert(kz_bus_topic_match_cstr("registration.success.*.*", k));
  ck_assert(kz_bus_topic_match_cstr("registration.#", k));
  ck_assert(!kz_bus_topic_match_cstr("registration.success.*", k));
  kz_free(k);
}
END_TEST

/* A pathological pattern stays fast: many '#' against a long key that
 * fails at the very end. */
START_TEST(test_topic_match_worst_case) {
  char pat[4096], key[8192];
  size_t n = 0;
  for (int i = 0; i < 500; i++) n += (size_t)sprintf(pat + n, "#.a.");
  sprintf(pat + n, "b");
  n = 0;
  for (int i = 0; i < 2000; i++) n += (size_t)sprintf(key + n, "a.");
  sprintf(key + n, "c");
  ck_assert(!kz_bus_topic_match_cstr(pat, key));
  key[n] = 'b';
  ck_assert(kz_bus_topic_match_cstr(pat, key));
}
END_TEST

void kz_bus_test_add_keys(Suite *s) {
  TCase *tc = kz_tcase(s, "exchanges", 10);
  tcase_add_test(tc, test_exchanges);
  tc = kz_tcase(s, "escaping", 10);
  tcase_add_test(tc, test_encode);
  tcase_add_test(tc, test_encode_roundtrip_all_bytes);
  tcase_add_test(tc, test_decode_edges);
  tc = kz_tcase(s, "routing_keys", 30);
  tcase_add_test(tc, test_key_builders);
  tcase_add_test(tc, test_key_builders_alloc_failure);
  tcase_add_test(tc, test_keys_from_messages);
  tcase_add_test(tc, test_reply_queue);
  tc = kz_tcase(s, "topic", 30);
  tcase_add_test(tc, test_topic_match);
  tcase_add_test(tc, test_topic_match_worst_case);
}
