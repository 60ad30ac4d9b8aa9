/* kz/kapi.h — Kazoo's JSON message API (kapi): envelope, per-type validation tables, builders, bounded parsing. */
#ifndef KZ_KAPI_H
#define KZ_KAPI_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "kz/buf.h"
#include "kz/prng.h"

/* Every message on kz's bus is a JSON object shaped like Kazoo's kapi
 * messages (core/kazoo_amqp/src/api/kapi_*.erl): an envelope
 *
 *   Event-Category, Event-Name, App-Name, App-Version, Msg-ID  (required)
 *   Server-ID, Node, Msg-Reply-ID, Account-ID, Call-ID, ...    (optional)
 *
 * plus the fields of its type.  Each type is one row of a const table
 * (kapi_schema.c) listing its category, its allowed Event-Name values, its
 * required and optional fields with their JSON types, allowed values and
 * formats, exactly as Kazoo's *_HEADERS / OPTIONAL_*_HEADERS / *_VALUES /
 * *_TYPES macros do.  Like Kazoo's kz_api:validate, fields the table does
 * not list are accepted and left alone; listed fields are checked whether
 * required or optional.  Where kz is stricter than Kazoo (formats of codes,
 * user@host addresses, a few per-event required fields) the table says so
 * in a comment.
 *
 * Ownership: json_t values follow jansson's reference counting.  A
 * function that returns a json_t through an out-pointer hands the caller
 * one reference (json_decref it); functions taking `const json_t *` borrow.
 * jansson's allocator is left alone (it is process-global); kz allocations
 * (kz_buf, routing keys) go through kz_malloc. */

enum kz_kapi_type {
  KZ_KAPI_UNKNOWN = 0,
  KZ_KAPI_AUTHN_REQ,       /* directory/authn_req       Kamailio -> registrar */
  KZ_KAPI_AUTHN_RESP,      /* directory/authn_resp      -> Server-ID          */
  KZ_KAPI_AUTHN_ERR,       /* directory/authn_err       -> Server-ID          */
  KZ_KAPI_REG_SUCCESS,     /* directory/reg_success     registrar exchange    */
  KZ_KAPI_REG_QUERY,       /* directory/reg_query                             */
  KZ_KAPI_REG_QUERY_RESP,  /* directory/reg_query_resp  -> Server-ID          */
  KZ_KAPI_REG_QUERY_ERR,   /* directory/reg_query_error -> Server-ID          */
  KZ_KAPI_REG_FLUSH,       /* directory/reg_flush                             */
  KZ_KAPI_REG_SYNC,        /* directory/reg_sync                              */
  KZ_KAPI_ROUTE_REQ,       /* dialplan/route_req        ecallmgr -> kapps     */
  KZ_KAPI_ROUTE_RESP,      /* dialplan/route_resp       -> Server-ID          */
  KZ_KAPI_ROUTE_WIN,       /* dialplan/route_win        -> winner's Server-ID */
  KZ_KAPI_CALL_COMMAND,    /* call/command              -> control queue      */
  KZ_KAPI_CALL_EVENT,      /* call_event/<FS event>     callevt exchange      */
  KZ_KAPI_NODES_ADVERTISE, /* nodes/advertise           nodes (fanout)        */
  KZ_KAPI_DOC_CHANGE,      /* configuration/doc_created|doc_edited|doc_deleted
                              (and db_created|db_edited|db_deleted)          */
  KZ_KAPI_OFFNET_REQ,      /* resource/offnet_req       -> stepswitch         */
  KZ_KAPI_OFFNET_RESP,     /* resource/offnet_resp      -> Server-ID          */
  KZ_KAPI_TYPE_COUNT
};

/* Why a message was refused: one line such as
 * "authn_req: missing required field Auth-Realm" or
 * "route_resp: Method must be one of bridge, park, error, sms, plan,
 * application: got 'foo'".  Always NUL-terminated; long values are cut. */
struct kz_kapi_error {
  char reason[256];
};

/* Kazoo's name for the type ("authn_req", "call_command", "call_event",
 * "doc_change"...); "unknown" for KZ_KAPI_UNKNOWN or out-of-range values. */
const char *kz_kapi_type_name(enum kz_kapi_type type);

/* The Event-Category of the type ("directory", "dialplan", "call", ...),
 * NULL for KZ_KAPI_UNKNOWN. */
const char *kz_kapi_type_category(enum kz_kapi_type type);

/* The fixed Event-Name of the type, or NULL when the type allows several
 * (call events, document changes) or for KZ_KAPI_UNKNOWN. */
const char *kz_kapi_type_event_name(enum kz_kapi_type type);

/* The exchange the type is published to (see kz/bus.h), never NULL except
 * for KZ_KAPI_UNKNOWN.  Replies go to "targeted", call commands to
 * "callctl". */
const char *kz_kapi_type_exchange(enum kz_kapi_type type);

/* Identifies a type from an Event-Category and Event-Name (exact, case
 * sensitive, as Kazoo matches them).  Returns KZ_KAPI_UNKNOWN when the
 * pair is not one of the types above. */
enum kz_kapi_type kz_kapi_identify(const char *category, const char *name);

/* The same from a message's Event-Category/Event-Name fields; missing or
 * non-string fields give KZ_KAPI_UNKNOWN. */
enum kz_kapi_type kz_kapi_identify_msg(const json_t *msg);

/* Checks `msg` against the envelope and the table row of `type`.
 * Returns 0 when valid; KZ_EPROTO when not, with err->reason set (err may
 * be NULL); KZ_EINVAL when msg is NULL or type out of range.  Never
 * modifies msg. */
int kz_kapi_validate(const json_t *msg, enum kz_kapi_type type,
                     struct kz_kapi_error *err);

/* ------------------------------------------------------------------ */
/* Parsing bytes                                                        */

struct kz_kapi_limits {
  size_t max_size;  /* bytes; 0 = KZ_KAPI_DEFAULT_MAX_SIZE  */
  size_t max_depth; /* nesting of arrays/objects, the top-level object
                       counting as 1; 0 = KZ_KAPI_DEFAULT_MAX_DEPTH */
};

#define KZ_KAPI_DEFAULT_MAX_SIZE ((size_t)4 << 20)
#define KZ_KAPI_DEFAULT_MAX_DEPTH 32

/* Parses `len` bytes as one JSON object, within `lim` (NULL = defaults).
 * Refuses: oversize input, nesting deeper than max_depth, invalid JSON or
 * UTF-8 (jansson's text with line/column), duplicate keys, trailing
 * garbage, and top-level values that are not objects.  On success *out
 * receives a new reference.  Returns 0, KZ_EMSGSIZE (too big), KZ_EPROTO
 * (anything else wrong with the bytes) or KZ_EINVAL (NULL arguments);
 * err->reason says what was wrong.  Plain messages are read by kz's own
 * reader into the jansson values json_loadb would give; anything else
 * (reals, very long integers, every error) goes through json_loadb, so
 * results and reasons are jansson's. */
int kz_kapi_parse(const void *data, size_t len,
                  const struct kz_kapi_limits *lim, json_t **out,
                  struct kz_kapi_error *err);

/* Parses and validates.  With expected == KZ_KAPI_UNKNOWN the type is
 * identified from the message (unknown category/name is refused);
 * otherwise the message must be of that type.  *out receives a reference
 * only when the message is valid, and *type_out (optional) its type.
 * Returns 0, KZ_EMSGSIZE, KZ_EPROTO or KZ_EINVAL with err->reason set. */
int kz_kapi_decode(const void *data, size_t len,
                   const struct kz_kapi_limits *lim,
                   enum kz_kapi_type expected, json_t **out,
                   enum kz_kapi_type *type_out, struct kz_kapi_error *err);

/* Appends the compact JSON text of msg to out (keys in insertion order,
 * so the same message always gives the same bytes): byte for byte what
 * json_dumps(msg, JSON_COMPACT) gives, written without jansson's
 * per-token callbacks.  Returns 0, KZ_ENOMEM (out of memory, or what
 * jansson refuses to write: invalid UTF-8, a container inside itself, a
 * msg that is neither object nor array; out keeps its old length) or
 * KZ_EINVAL. */
int kz_kapi_dump(const json_t *msg, struct kz_buf *out);

/* ------------------------------------------------------------------ */
/* Building                                                             */

/* Who is sending: copied into the envelope of every message built. */
struct kz_kapi_origin {
  const char *app_name;    /* required, e.g. "kz_apps" */
  const char *app_version; /* required, e.g. "0.1.0" */
  const char *node;        /* optional (NULL omits), e.g. "apps@host1" */
  const char *server_id;   /* optional reply queue (NULL omits) */
};

/* Length of a generated Msg-ID: 32 lowercase hex digits, as Kazoo's
 * kz_binary:rand_hex(16). */
#define KZ_KAPI_MSG_ID_LEN 32

/* Writes a fresh Msg-ID drawn from `prng` into out (KZ_KAPI_MSG_ID_LEN
 * characters plus a NUL). */
void kz_kapi_msg_id(struct kz_prng *prng, char out[KZ_KAPI_MSG_ID_LEN + 1]);

/* Builds a message of `type` from `body` (borrowed; never modified): a
 * new object holding body's fields with the envelope filled in.  Body's
 * values are shared with the result, not copied (the message takes a
 * reference to each), so a nested object changed in one is changed in
 * the other.  Event-Category and, for types with a fixed name,
 * Event-Name (types with several names take Event-Name from body);
 * App-Name, App-Version, Node and Server-ID from
 * origin (origin wins over body); Msg-ID kept from body when present (a
 * reply echoes its request's Msg-ID) and otherwise drawn from `prng`.
 * body may be NULL for types without required fields.  The result is
 * validated before it is returned: on success *out receives a new
 * reference; on failure nothing is returned.
 * Returns 0, KZ_EPROTO (the result would be invalid; err->reason says
 * why), KZ_EINVAL (NULL origin/prng/out, a body that is not an object,
 * a body whose Event-Category/Event-Name contradict `type`) or KZ_ENOMEM. */
int kz_kapi_build(enum kz_kapi_type type, const struct kz_kapi_origin *origin,
                  struct kz_prng *prng, const json_t *body, json_t **out,
                  struct kz_kapi_error *err);

/* Builds a reply of `type` to `request`: like kz_kapi_build, with Msg-ID
 * copied from the request (Kazoo correlates request and response on it)
 * and Call-ID copied when the request has one and body does not.
 * Returns what kz_kapi_build returns; KZ_EPROTO also when the request
 * has no string Msg-ID. */
int kz_kapi_build_reply(enum kz_kapi_type type,
                        const struct kz_kapi_origin *origin,
                        const json_t *request, const json_t *body,
                        json_t **out, struct kz_kapi_error *err);

#endif /* KZ_KAPI_H */
