/* kz/bus.h — Kazoo's AMQP exchanges, routing keys (with kz_amqp_util:encode escaping) and RabbitMQ topic matching. */
#ifndef KZ_BUS_H
#define KZ_BUS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "kz/buf.h"
#include "kz/kapi.h"

/* ------------------------------------------------------------------ */
/* Exchanges                                                            */

enum kz_bus_exchange_type {
  KZ_BUS_EX_DIRECT = 1,
  KZ_BUS_EX_TOPIC,
  KZ_BUS_EX_FANOUT,
};

struct kz_bus_exchange {
  const char *name;
  enum kz_bus_exchange_type type;
  const char *use; /* one line, for docs and `kz` output */
};

/* Kazoo's exchanges, as declared in core/kazoo_amqp/include/kz_amqp.hrl
 * (targeted, callctl, callevt, resources, callmgr, conference, monitor,
 * configuration, kapps, presence, notifications, sysconf, bookkeepers,
 * nodes, registrar, leader, tasks) plus those the research note §1.3
 * lists from other modules (omnipresence, cdr, frontier, frontier_acl).
 * A const table; *n receives its length. */
const struct kz_bus_exchange *kz_bus_exchanges(size_t *n);

/* The exchange called `name`, or NULL. */
const struct kz_bus_exchange *kz_bus_exchange_find(const char *name);

/* "direct", "topic", "fanout" (or "?" for out-of-range values). */
const char *kz_bus_exchange_type_name(enum kz_bus_exchange_type type);

/* ------------------------------------------------------------------ */
/* Escaping variable parts of routing keys                              */

/* kz_bus_key_encode implements Kazoo's kz_amqp_util:encode/1 (4.3 and
 * 5.x are identical; also Kamailio's kazoo module {kz.encode}), so a key
 * built here is byte-identical to the one Kazoo builds:
 *
 *   - the whole value "*" or "#" is kept as is (so a binding can pass a
 *     wildcard where a variable part goes), and "" stays "";
 *   - bytes [A-Za-z0-9], '-', '~' and '_' are kept;
 *   - a space becomes '+';
 *   - every other byte, '.', '*', '#', '%', '+' and bytes >= 0x80 among
 *     them, becomes %XX with upper-case hex ('.' -> "%2E").
 *
 * So an encoded part never contains '.', and '*' / '#' only when it is
 * exactly that wildcard.  Appends to out; returns 0 or KZ_ENOMEM. */
int kz_bus_key_encode(struct kz_buf *out, const char *s, size_t len);

/* The inverse: '+' -> space, %XX (either hex case) -> byte, other bytes
 * kept.  Appends to out.  Returns 0, KZ_EPROTO (a '%' not followed by two
 * hex digits; out is unchanged) or KZ_ENOMEM. */
int kz_bus_key_decode(struct kz_buf *out, const char *s, size_t len);

/* ------------------------------------------------------------------ */
/* Routing keys                                                         */

/* Every key builder returns a NUL-terminated string from kz_malloc in
 * *out (the caller kz_frees it) and 0, or KZ_ENOMEM, or KZ_EINVAL when a
 * needed part is missing (*out untouched).  Variable parts are escaped
 * with kz_bus_key_encode unless noted; a NULL part means the wildcard
 * "*" (for bindings).  The shapes are Kazoo's:
 *
 *   authn_req      authn.req.<realm>                  (kapi_authn)
 *   reg_success    registration.success.<realm>.<user> (kapi_registration)
 *   reg_query      registration.query.<realm>.<user>
 *   reg_flush      registration.flush.<realm>
 *   reg_sync       registration.sync
 *   route_req      route.req.<type>.<account_id>       (kapi_route)
 *                  route.req.<type>.<realm>.<user>     (no Account-ID)
 *   call events    call.<EVENT-NAME>.<call-id>         (kapi_call; the
 *                                                       event name is not
 *                                                       escaped)
 *   doc changes    <action>.<db>.<type>.<id>           (kz_amqp_util:
 *                  document_routing_key; db and type are not escaped,
 *                  the id is)
 *   offnet_req     offnet.resource.req                 (kz_amqp.hrl)
 *   nodes          "" (fanout)
 *   replies        the requester's queue (kz_bus_reply_queue)
 *   call commands  the call's Control-Queue                            */

int kz_bus_rk_authn_req(char **out, const char *realm);
int kz_bus_rk_reg_success(char **out, const char *realm, const char *user);
int kz_bus_rk_reg_query(char **out, const char *realm, const char *user);
int kz_bus_rk_reg_flush(char **out, const char *realm);
int kz_bus_rk_route_req_account(char **out, const char *resource_type,
                                const char *account_id);
int kz_bus_rk_route_req_realm(char **out, const char *resource_type,
                              const char *realm, const char *user);
int kz_bus_rk_call_event(char **out, const char *event_name,
                         const char *call_id);

/* `action` is "created", "edited" or "deleted" (or an already prefixed
 * "doc_*" / "db_*", or NULL for "*"); as in Kazoo the prefix is "db_"
 * when doc_type is "database" and "doc_" otherwise. */
int kz_bus_rk_doc_change(char **out, const char *action, const char *db,
                         const char *doc_type, const char *doc_id);

/* The routing key to publish `msg` (a valid message of `type`) with,
 * derived from its fields the way Kazoo's publish_* functions derive it:
 *   authn_req    Auth-Realm lower-cased, or the To domain when the realm
 *                is an IP address (kapi_authn:get_auth_realm);
 *   reg_*        Realm and Username (a reg_query without Username uses
 *                "*"; Realm is needed);
 *   route_req    Resource-Type and Account-ID (top level, else in
 *                Custom-Channel-Vars), else the From user@realm;
 *   call events  Event-Name and Call-ID;
 *   doc changes  Event-Name, Database, Type and ID;
 *   offnet_req   "offnet.resource.req"; advertise "" (fanout).
 * Call commands go to the call's control queue on "callctl" and replies
 * (authn_resp/err, reg_query_resp/error, route_resp/win, offnet_resp) to
 * kz_bus_reply_queue(request's Server-ID) on "targeted": for those, and
 * when a needed field is missing, the result is KZ_EINVAL with
 * err->reason saying why.  Returns 0, KZ_EINVAL or KZ_ENOMEM. */
int kz_bus_routing_key(const json_t *msg, enum kz_kapi_type type, char **out,
                       struct kz_kapi_error *err);

/* The queue a reply to `server_id` is published to on "targeted":
 * Kazoo's Server-ID may be "pid://<erlang pid>/<queue>" or
 * "consumer://<pid>/<queue>", of which only the part after the last '/'
 * names the queue; any other Server-ID is the queue itself.  Returns a
 * slice into server_id (empty when server_id is NULL). */
struct kz_slice kz_bus_reply_queue(const char *server_id);

/* ------------------------------------------------------------------ */
/* Topic matching                                                       */

/* RabbitMQ topic-exchange semantics: pattern and key are split on '.'
 * into words (the empty string has no words; "a..b" has three, the
 * middle one empty); in the pattern, a word "*" matches exactly one word
 * (possibly empty), a word "#" matches zero or more words, and any other
 * word matches only an identical word.  Runs in O(words(pattern) x
 * words(key)) without allocating. */
bool kz_bus_topic_match(const char *pattern, size_t plen, const char *key,
                        size_t klen);

/* NUL-terminated convenience form. */
bool kz_bus_topic_match_cstr(const char *pattern, const char *key);

#endif /* KZ_BUS_H */
