/* kapi_schema.h — private: the shape of kz's kapi validation tables (one const row per message type). */
#ifndef KZ_BUS_KAPI_SCHEMA_H
#define KZ_BUS_KAPI_SCHEMA_H

#include <stddef.h>

#include <jansson.h>

#include "kz/kapi.h"

/* JSON type a field must have.  Kazoo's type funs map onto these:
 * is_binary -> STRING, kz_term:is_ne_binary -> NESTRING,
 * kz_json:is_json_object -> OBJECT, is_list -> ARRAY, kz_term:is_boolean
 * (true/false atoms or <<"true">>/<<"false">>) -> BOOLISH. */
enum kapi_jtype {
  JT_ANY = 0,   /* anything (Kazoo does not type the field) */
  JT_STRING,
  JT_NESTRING,
  JT_OBJECT,
  JT_ARRAY,
  JT_BOOLISH,   /* true/false or "true"/"false" */
  JT_INTEGER,
  JT_INTISH,    /* an integer or a string of decimal digits */
  JT_SCALAR,    /* a string or a number */
};

/* Extra checks on a field's value once its JSON type is right. */
enum kapi_fmt {
  FMT_NONE = 0,
  FMT_SIP_CODE,     /* "486": 3 digits, 100..699 */
  FMT_HANGUP_CODE,  /* "sip:486" */
  FMT_USER_AT_HOST, /* "user@host", both sides non-empty */
  FMT_TERMINATORS,  /* "#*1" or ["#", "*"]: DTMF digits 0-9 * # A-D */
  FMT_REG_FIELDS,   /* array of reg_success field names (reg_query Fields) */
  FMT_COST_PARAMS,  /* object keyed by Kazoo's four cost parameters */
  FMT_OBJECTS,      /* array of objects, each checked against `sub` */
  FMT_COMMANDS,     /* array of call commands (the queue command) */
};

struct kapi_schema;

struct kapi_field {
  const char *name;
  unsigned char required;
  unsigned char jtype;
  unsigned char fmt;
  const char *const *values;     /* NULL-terminated allowed strings, or NULL */
  const struct kapi_schema *sub; /* FMT_OBJECTS */
  size_t name_len; /* strlen(name), set by the tables' F macro; 0 = unknown */
};

struct kapi_schema {
  const char *name; /* used in reasons for nested objects ("endpoint") */
  const struct kapi_field *fields;
  size_t n_fields;
};

struct kapi_def;

/* Type-specific checks the field table cannot express (route_resp's
 * Routes when Method is bridge, the per-command tables of call/command,
 * per-event requirements of call events).  Returns 0 or KZ_EPROTO with
 * err filled, prefix being the "type: " part of the reason. */
typedef int kapi_extra_fn(const json_t *msg, const struct kapi_def *def,
                          struct kz_kapi_error *err);

struct kapi_def {
  enum kz_kapi_type type;
  const char *name;     /* Kazoo's name, used as reason prefix */
  const char *category; /* Event-Category */
  const char *const *event_names; /* NULL-terminated, at least one */
  const char *exchange;
  const struct kapi_schema *schema;
  kapi_extra_fn *extra; /* NULL when none */
};

/* Call commands: one schema per Application-Name. */
struct kapi_command {
  const char *app;
  const struct kapi_schema *schema;
};

extern const struct kapi_schema kz_bus_kapi_envelope_schema;
extern const struct kapi_def kz_bus_kapi_defs[KZ_KAPI_TYPE_COUNT];
extern const struct kapi_command kz_bus_kapi_commands[];
extern const size_t kz_bus_kapi_n_commands;
extern const char *const kz_bus_kapi_reg_fields[];
extern const char *const kz_bus_kapi_cost_params[];
extern const struct kapi_schema *const kz_bus_kapi_route_schema;

/* The row of `type`, or NULL when out of range or KZ_KAPI_UNKNOWN. */
const struct kapi_def *kz_bus_kapi_def_of(enum kz_kapi_type type);
/* The command schema for an Application-Name, or NULL. */
const struct kapi_command *kz_bus_kapi_command_find(const char *app);

/* Validation engine (kapi_validate.c), shared with the extra hooks.
 * `prefix` starts every reason ("call_command(bridge)"). */
int kz_bus_kapi_check_object(const json_t *obj, const struct kapi_schema *schema,
                      const char *prefix, struct kz_kapi_error *err);
void kz_bus_kapi_fail(struct kz_kapi_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The extra hooks (kapi_validate.c). */
kapi_extra_fn kz_bus_kapi_extra_route_resp;
kapi_extra_fn kz_bus_kapi_extra_call_command;
kapi_extra_fn kz_bus_kapi_extra_call_event;

#endif /* KZ_BUS_KAPI_SCHEMA_H */
