/* exchange.c — the const table of Kazoo's AMQP exchanges (name and type). */
#include <string.h>

#include "kz/bus.h"

/* core/kazoo_amqp/include/kz_amqp.hrl (EXCHANGE_* / TYPE_*), then the
 * exchanges the research note (kazoo.md §1.3) adds from other modules. */
static const struct kz_bus_exchange exchanges[] = {
    {"targeted", KZ_BUS_EX_DIRECT, "replies and point-to-point messages"},
    {"callctl", KZ_BUS_EX_DIRECT, "call commands to a call's control queue"},
    {"callevt", KZ_BUS_EX_TOPIC, "call events and channel queries"},
    {"resources", KZ_BUS_EX_TOPIC, "offnet and originate resource requests"},
    {"callmgr", KZ_BUS_EX_TOPIC, "authn/route/authz requests"},
    {"conference", KZ_BUS_EX_TOPIC, "conference discovery, commands, events"},
    {"monitor", KZ_BUS_EX_TOPIC, "monitoring"},
    {"configuration", KZ_BUS_EX_TOPIC, "database change notices"},
    {"kapps", KZ_BUS_EX_TOPIC, "inter-kapp requests"},
    {"presence", KZ_BUS_EX_TOPIC, "BLF and MWI updates"},
    {"notifications", KZ_BUS_EX_TOPIC, "teletype triggers"},
    {"sysconf", KZ_BUS_EX_TOPIC, "system_config get/set/flush"},
    {"bookkeepers", KZ_BUS_EX_TOPIC, "billing"},
    {"nodes", KZ_BUS_EX_FANOUT, "node heartbeats (advertise)"},
    {"registrar", KZ_BUS_EX_TOPIC, "registration events and queries"},
    {"leader", KZ_BUS_EX_TOPIC, "leader election"},
    {"tasks", KZ_BUS_EX_TOPIC, "task discovery"},
    {"omnipresence", KZ_BUS_EX_TOPIC, "Kamailio SUBSCRIBE notifications"},
    {"cdr", KZ_BUS_EX_TOPIC, "CDR reports"},
    {"frontier", KZ_BUS_EX_DIRECT, "Kamailio rate-limit/ACL queries"},
    {"frontier_acl", KZ_BUS_EX_TOPIC, "Kamailio ACL queries"},
};

const struct kz_bus_exchange *kz_bus_exchanges(size_t *n) {
  if (n) *n = sizeof exchanges / sizeof exchanges[0];
  return exchanges;
}

const struct kz_bus_exchange *kz_bus_exchange_find(const char *name) {
  if (!name) return NULL;
  for (size_t i = 0; i < sizeof exchanges / sizeof exchanges[0]; i++) {
    if (strcmp(exchanges[i].name, name) == 0) return &exchanges[i];
  }
  return NULL;
}

const char *kz_bus_exchange_type_name(enum kz_bus_exchange_type type) {
  switch (type) {
  case KZ_BUS_EX_DIRECT: return "direct";
  case KZ_BUS_EX_TOPIC: return "topic";
  case KZ_BUS_EX_FANOUT: return "fanout";
  }
  return "?";
}
