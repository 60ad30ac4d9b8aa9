/* kapi_schema.c — const validation tables for kz's kapi messages, transcribed from Kazoo's kapi_*.erl / *.hrl. */
#include "kapi_schema.h"

#include <string.h>

/* Sources (2600hz/kazoo, 4.3 and master): kz_api.hrl (envelope),
 * kapi_authn.erl, kapi_registration.erl, kapi_route.erl/.hrl,
 * kapi_dialplan.hrl (call commands), kapi_call.erl (call events),
 * kapi_nodes.erl, kapi_conf.erl (+ kz_amqp_util document_routing_key),
 * kapi_offnet_resource.erl/.hrl.  Field names are Kazoo's, letter for
 * letter.  "kz:" comments mark checks stricter than Kazoo's. */

/* Field names are literals: their length is known at compile time. */
#define F(n, req, t, fmt, vals, sub) \
  {(n), (req), (t), (fmt), (vals), (sub), sizeof(n) - 1}
#define REQ(n, t) F(n, 1, t, FMT_NONE, NULL, NULL)
#define OPT(n, t) F(n, 0, t, FMT_NONE, NULL, NULL)
#define REQV(n, vals) F(n, 1, JT_STRING, FMT_NONE, vals, NULL)
#define OPTV(n, vals) F(n, 0, JT_STRING, FMT_NONE, vals, NULL)
#define REQF(n, t, fmt) F(n, 1, t, fmt, NULL, NULL)
#define OPTF(n, t, fmt) F(n, 0, t, fmt, NULL, NULL)
#define REQSUB(n, sub) F(n, 1, JT_ARRAY, FMT_OBJECTS, NULL, sub)
#define OPTSUB(n, sub) F(n, 0, JT_ARRAY, FMT_OBJECTS, NULL, sub)
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define SCHEMA(var, nm, arr) \
  static const struct kapi_schema var = {(nm), (arr), COUNT(arr)}

/* ------------------------------------------------------------------ */
/* Value lists                                                          */

static const char *const v_insert_at[] = {"head", "tail", "flush", "now", NULL};
static const char *const v_leg[] = {"A", "B", "Both", NULL};
static const char *const v_media3[] = {"process", "bypass", "auto", NULL};
/* kapi_dialplan.hrl ?INVITE_FORMAT_TUPLE (4.3) plus the values the
 * research note lists for 5.x routes (endpoint, forward, strip_plus). */
static const char *const v_invite_format[] = {
    "username", "e164", "npan", "1npan", "route", "loopback", "contact",
    "endpoint", "forward", "strip_plus", NULL};
static const char *const v_auth_method[] = {
    "password", "ip", "a1-hash", "error", "gsm", "nonce", "a3a8", NULL};
/* kz: Kazoo does not restrict authn_req's Method; kz accepts the SIP
 * methods Kamailio asks about. */
static const char *const v_sip_method[] = {
    "REGISTER", "INVITE",  "SUBSCRIBE", "MESSAGE", "REFER",
    "NOTIFY",   "PUBLISH", "OPTIONS",   "INFO",    "UPDATE",
    "BYE",      "ACK",     "CANCEL",    "PRACK",   NULL};
static const char *const v_route_req_resource[] = {
    "mms", "sms", "audio", "video", "chat", "metaflow", NULL};
static const char *const v_route_req_media[] = {"process", "proxy", "bypass",
                                                NULL};
/* kz: Call-Direction is not restricted by Kazoo. */
static const char *const v_direction[] = {"inbound", "outbound", NULL};
static const char *const v_route_method[] = {
    "bridge", "park", "error", "sms", "plan", "application", NULL};
static const char *const v_pre_park[] = {"none", "ring_ready", "answer",
                                         NULL};
static const char *const v_caller_id_type[] = {"from", "rpid", "pid", NULL};
static const char *const v_dial_method[] = {"single", "simultaneous", NULL};
static const char *const v_sip_transport[] = {"udp", "tcp", "tls", NULL};
static const char *const v_ep_sip_transport[] = {"udp", "tcp", "tls", "sctp",
                                                 NULL};
static const char *const v_t38_gateway[] = {"self", "peer", NULL};
static const char *const v_endpoint_type[] = {"sip", "freetdm", "skype",
                                              NULL};
static const char *const v_voice[] = {"male", "female", NULL};
static const char *const v_record_action[] = {"start", "stop", NULL};
static const char *const v_transfer_method[] = {"stream", "put", "post",
                                                NULL};
static const char *const v_transfer_type[] = {"blind", "attended", NULL};
static const char *const v_transfer_leg[] = {"bleg", "both", NULL};
static const char *const v_offnet_resource[] = {"audio", "video",
                                                "originate", "sms", NULL};
static const char *const v_offnet_app[] = {"bridge", "eavesdrop", "fax",
                                           "park",   "sms",       "transfer",
                                           NULL};
static const char *const v_eavesdrop_mode[] = {"full", "listen", "whisper",
                                               NULL};

/* reg_query's Fields may only name reg_success fields (plus
 * Bridge-RURI): kapi_registration ?REG_QUERY_TYPES. */
const char *const kz_bus_kapi_reg_fields[] = {
    "Event-Timestamp", "Contact", "Expires", "Username", "Realm", "Status",
    "User-Agent", "Call-ID", "Profile-Name", "Presence-Hosts", "Account-ID",
    "Account-DB", "From-User", "From-Host", "To-User", "To-Host", "RPid",
    "Authorizing-ID", "FreeSWITCH-Hostname", "FreeSWITCH-Nodename",
    "Network-IP", "Network-Port", "Suppress-Unregister-Notify",
    "Register-Overwrite-Notify", "Original-Contact", "Registrar-Node",
    "Proxy-Path", "AOR", "RUID", "Proxy-Protocol", "Proxy-IP", "Proxy-Port",
    "Source-IP", "Source-Port", "First-Registration", "Custom-Channel-Vars",
    "Bridge-RURI", NULL};

/* kapi_route ?ROUTE_REQ_COST_PARAMS. */
const char *const kz_bus_kapi_cost_params[] = {
    "Max-Incremental-Cost", "Max-Setup-Cost", "Min-Increment-Cost",
    "Min-Setup-Cost", NULL};

/* ------------------------------------------------------------------ */
/* Envelope: kz_api.hrl ?DEFAULT_HEADERS / ?OPTIONAL_DEFAULT_HEADERS /
 * ?DEFAULT_TYPES.  Event-Category/Event-Name values are checked per type. */

static const struct kapi_field envelope_fields[] = {
    REQ("Event-Category", JT_STRING),
    REQ("Event-Name", JT_STRING),
    REQ("App-Name", JT_STRING),
    REQ("App-Version", JT_STRING),
    REQ("Msg-ID", JT_NESTRING),
    OPT("Server-ID", JT_STRING),
    OPT("Node", JT_STRING),
    OPT("Msg-Reply-ID", JT_STRING),
    OPT("Raw-Headers", JT_STRING),
    OPT("Destination-Server", JT_STRING),
    OPT("Geo-Location", JT_STRING),
    OPT("Access-Group", JT_STRING),
    OPT("Tenant-ID", JT_STRING),
    OPT("Defer-Response", JT_ANY),
    OPT("Server-Queue-ID", JT_STRING),
};
const struct kapi_schema kz_bus_kapi_envelope_schema = {"envelope", envelope_fields,
                                                 COUNT(envelope_fields)};

/* ------------------------------------------------------------------ */
/* Registration auth: kapi_authn.erl                                    */

static const struct kapi_field authn_req_fields[] = {
    REQ("To", JT_STRING),
    REQ("From", JT_STRING),
    REQ("Auth-User", JT_STRING),
    REQ("Auth-Realm", JT_STRING),
    OPTV("Method", v_sip_method),
    OPT("Switch-Hostname", JT_STRING),
    OPT("Orig-IP", JT_STRING),
    OPT("Orig-Port", JT_STRING),
    OPT("Call-ID", JT_STRING),
    OPT("Auth-Nonce", JT_STRING),
    OPT("Auth-Response", JT_STRING),
    OPT("User-Agent", JT_STRING),
    OPT("Expires", JT_ANY),
    OPT("Contact", JT_STRING),
    OPT("Custom-SIP-Headers", JT_OBJECT),
};
SCHEMA(authn_req_schema, "authn_req", authn_req_fields);

static const struct kapi_field authn_resp_fields[] = {
    REQV("Auth-Method", v_auth_method),
    REQ("Auth-Password", JT_STRING),
    OPT("Custom-Channel-Vars", JT_OBJECT),
    OPT("Custom-SIP-Headers", JT_OBJECT),
    OPT("Auth-Username", JT_STRING),
    OPT("Auth-Nonce", JT_STRING),
    OPT("Access-Group", JT_STRING),
    OPT("Tenant-ID", JT_STRING),
    OPT("Expires", JT_ANY),
    OPT("Suppress-Unregister-Notifications", JT_ANY),
    OPT("Register-Overwrite-Notify", JT_ANY),
};
SCHEMA(authn_resp_schema, "authn_resp", authn_resp_fields);

/* authn_err has no fields of its own (Permanent-Error rides along). */
static const struct kapi_field authn_err_fields[] = {
    OPT("Permanent-Error", JT_ANY),
};
SCHEMA(authn_err_schema, "authn_err", authn_err_fields);

/* ------------------------------------------------------------------ */
/* Registrations: kapi_registration.erl                                 */

static const struct kapi_field reg_success_fields[] = {
    REQ("Event-Timestamp", JT_INTISH),
    REQ("Contact", JT_STRING),
    REQ("Expires", JT_INTISH),
    REQ("Username", JT_STRING),
    REQ("Realm", JT_STRING),
    OPT("Status", JT_STRING),
    OPT("User-Agent", JT_STRING),
    OPT("Call-ID", JT_STRING),
    OPT("Profile-Name", JT_STRING),
    OPT("Presence-Hosts", JT_ANY),
    OPT("Account-ID", JT_STRING),
    OPT("Account-DB", JT_STRING),
    OPT("From-User", JT_STRING),
    OPT("From-Host", JT_STRING),
    OPT("To-User", JT_STRING),
    OPT("To-Host", JT_STRING),
    OPT("RPid", JT_STRING),
    OPT("Authorizing-ID", JT_STRING),
    OPT("FreeSWITCH-Hostname", JT_STRING),
    OPT("FreeSWITCH-Nodename", JT_STRING),
    OPT("Network-IP", JT_STRING),
    OPT("Network-Port", JT_SCALAR),
    OPT("Suppress-Unregister-Notify", JT_ANY),
    OPT("Register-Overwrite-Notify", JT_ANY),
    OPT("Original-Contact", JT_STRING),
    OPT("Registrar-Node", JT_STRING),
    OPT("Proxy-Path", JT_STRING),
    OPT("AOR", JT_STRING),
    OPT("RUID", JT_STRING),
    OPT("Proxy-Protocol", JT_STRING),
    OPT("Proxy-IP", JT_STRING),
    OPT("Proxy-Port", JT_SCALAR),
    OPT("Source-IP", JT_STRING),
    OPT("Source-Port", JT_SCALAR),
    OPT("First-Registration", JT_BOOLISH),
    OPT("Custom-Channel-Vars", JT_OBJECT),
};
SCHEMA(reg_success_schema, "reg_success", reg_success_fields);

static const struct kapi_field reg_query_fields[] = {
    OPT("Username", JT_STRING),
    OPT("Realm", JT_STRING),
    OPT("Count-Only", JT_BOOLISH),
    OPTF("Fields", JT_ARRAY, FMT_REG_FIELDS),
};
SCHEMA(reg_query_schema, "reg_query", reg_query_fields);

static const struct kapi_field reg_query_resp_fields[] = {
    OPT("Registrar-Age", JT_INTISH),
    OPT("Count", JT_INTISH),
    OPT("Fields", JT_ARRAY),
};
SCHEMA(reg_query_resp_schema, "reg_query_resp", reg_query_resp_fields);

static const struct kapi_field reg_query_err_fields[] = {
    OPT("Registrar-Age", JT_INTISH),
};
SCHEMA(reg_query_err_schema, "reg_query_error", reg_query_err_fields);

static const struct kapi_field reg_flush_fields[] = {
    REQ("Realm", JT_NESTRING),
    OPT("Username", JT_STRING),
    OPT("Cache-Only", JT_BOOLISH),
};
SCHEMA(reg_flush_schema, "reg_flush", reg_flush_fields);

static const struct kapi_field reg_sync_fields[] = {
    OPT("Realm", JT_STRING),
};
SCHEMA(reg_sync_schema, "reg_sync", reg_sync_fields);

/* ------------------------------------------------------------------ */
/* Call routing: kapi_route.hrl                                         */

static const struct kapi_field route_req_fields[] = {
    /* kz: From, To and Request must be user@host; Kazoo splits From on
     * '@' to build the routing key and crashes otherwise. */
    REQF("To", JT_STRING, FMT_USER_AT_HOST),
    REQF("From", JT_STRING, FMT_USER_AT_HOST),
    REQF("Request", JT_STRING, FMT_USER_AT_HOST),
    REQ("Call-ID", JT_NESTRING),
    OPT("Geo-Location", JT_ANY),
    OPT("Orig-IP", JT_STRING),
    OPT("Orig-Port", JT_SCALAR),
    OPT("Max-Call-Length", JT_INTISH),
    OPTV("Media", v_route_req_media),
    OPT("Transcode", JT_ANY),
    OPT("Codecs", JT_ARRAY),
    OPT("Custom-Channel-Vars", JT_OBJECT),
    OPT("Custom-SIP-Headers", JT_OBJECT),
    OPTV("Resource-Type", v_route_req_resource),
    OPTF("Cost-Parameters", JT_OBJECT, FMT_COST_PARAMS),
    OPT("From-Network-Addr", JT_STRING),
    OPT("From-Network-Port", JT_SCALAR),
    OPT("User-Agent", JT_STRING),
    OPT("Switch-Hostname", JT_STRING),
    OPT("Switch-Nodename", JT_STRING),
    OPT("Switch-URL", JT_STRING),
    OPT("Switch-URI", JT_STRING),
    OPT("Ringback-Media", JT_STRING),
    OPT("Transfer-Media", JT_STRING),
    OPT("SIP-Request-Host", JT_STRING),
    OPT("Message-ID", JT_STRING),
    OPT("Body", JT_STRING),
    OPT("From-Tag", JT_STRING),
    OPT("To-Tag", JT_STRING),
    OPT("Prepend-CID-Name", JT_STRING),
    OPTV("Call-Direction", v_direction),
    OPT("Custom-Routing-Headers", JT_OBJECT),
    OPT("Caller-ID-Name", JT_STRING),
    OPT("Caller-ID-Number", JT_STRING),
    OPT("Event-Queue", JT_STRING),
};
SCHEMA(route_req_schema, "route_req", route_req_fields);

/* One route of a bridge route_resp: ?ROUTE_RESP_ROUTE_*. */
static const struct kapi_field route_fields[] = {
    REQV("Invite-Format", v_invite_format),
    OPT("Route", JT_STRING),
    OPT("To-User", JT_STRING),
    OPT("To-Realm", JT_STRING),
    OPT("To-DID", JT_STRING),
    OPT("Proxy-Via", JT_STRING),
    OPTV("Media", v_media3),
    OPT("Auth-User", JT_STRING),
    OPT("Auth-Password", JT_STRING),
    OPT("Codecs", JT_ARRAY),
    OPT("Progress-Timeout", JT_INTISH),
    OPT("Caller-ID-Name", JT_STRING),
    OPT("Caller-ID-Number", JT_STRING),
    OPTV("Caller-ID-Type", v_caller_id_type),
    OPT("Rate", JT_SCALAR),
    OPT("Rate-Increment", JT_SCALAR),
    OPT("Rate-Minimum", JT_SCALAR),
    OPT("Surcharge", JT_SCALAR),
    OPT("Rate-NoCharge-Time", JT_SCALAR),
    OPT("Custom-SIP-Headers", JT_OBJECT),
    OPT("Custom-Channel-Vars", JT_OBJECT),
    OPT("Weight-Cost", JT_SCALAR),
    OPT("Weight-Location", JT_SCALAR),
};
SCHEMA(route_schema, "route", route_fields);

static const struct kapi_field route_resp_fields[] = {
    REQV("Method", v_route_method),
    OPT("Custom-Channel-Vars", JT_OBJECT),
    /* Routes are checked one by one when Method is bridge
     * (kz_bus_kapi_extra_route_resp), as kapi_route:resp_v does. */
    OPT("Routes", JT_ARRAY),
    /* kz: a SIP status code ("486"). */
    OPTF("Route-Error-Code", JT_STRING, FMT_SIP_CODE),
    OPT("Route-Error-Message", JT_STRING),
    OPT("Ringback-Media", JT_STRING),
    OPT("Transfer-Media", JT_STRING),
    OPTV("Pre-Park", v_pre_park),
    OPT("From-User", JT_STRING),
    OPT("From-Realm", JT_STRING),
    OPT("From-URI", JT_STRING),
    OPT("Plan-Data", JT_ANY),
    OPT("Application-Data", JT_ANY),
};
SCHEMA(route_resp_schema, "route_resp", route_resp_fields);
/* Exposed for kz_bus_kapi_extra_route_resp. */
const struct kapi_schema *const kz_bus_kapi_route_schema = &route_schema;

static const struct kapi_field route_win_fields[] = {
    REQ("Call-ID", JT_NESTRING),
    REQ("Control-Queue", JT_NESTRING),
    OPT("Custom-Channel-Vars", JT_OBJECT),
    OPT("Switch-Hostname", JT_STRING),
};
SCHEMA(route_win_schema, "route_win", route_win_fields);

/* ------------------------------------------------------------------ */
/* Call commands: kapi_dialplan.hrl.  The message-level table checks the
 * two fields every command has; the command's own table (below) the
 * rest.                                                                */

static const char *const v_command_apps[] = {
    "answer", "progress", "ring", "hangup", "park", "bridge", "unbridge",
    "play", "playstop", "tts", "record", "record_call",
    "play_and_collect_digits", "tones", "send_dtmf", "set", "respond",
    "sleep", "noop", "echo", "queue", "redirect", "transfer", "conference",
    NULL};

static const struct kapi_field call_command_fields[] = {
    REQV("Application-Name", v_command_apps),
    REQ("Call-ID", JT_NESTRING),
    OPTV("Insert-At", v_insert_at),
    OPT("Group-ID", JT_STRING),
};
SCHEMA(call_command_schema, "call_command", call_command_fields);

/* Commands with nothing but Insert-At: answer, progress, echo. */
static const struct kapi_field cmd_plain_fields[] = {
    OPTV("Insert-At", v_insert_at),
};
SCHEMA(cmd_plain_schema, "command", cmd_plain_fields);

static const struct kapi_field cmd_ring_fields[] = {
    OPTV("Insert-At", v_insert_at),
    OPT("Ringback", JT_STRING),
};
SCHEMA(cmd_ring_schema, "ring", cmd_ring_fields);

static const struct kapi_field cmd_hangup_fields[] = {
    OPTV("Insert-At", v_insert_at),
    OPT("Other-Leg-Only", JT_BOOLISH),
    OPT("Hangup-Cause", JT_STRING),
};
SCHEMA(cmd_hangup_schema, "hangup", cmd_hangup_fields);

static const struct kapi_field cmd_park_fields[] = {
    OPTV("Insert-At", v_insert_at),
    OPT("Timeout", JT_INTISH),
    OPT("Hangup-Cause", JT_STRING),
};
SCHEMA(cmd_park_schema, "park", cmd_park_fields);

/* ?BRIDGE_REQ_ENDPOINT_*. */
static const struct kapi_field endpoint_fields[] = {
    REQV("Invite-Format", v_invite_format),
    OPT("Auth-Password", JT_STRING),
    OPT("Auth-Realm", JT_STRING),
    OPT("Auth-User", JT_STRING),
    OPT("Bypass-Media", JT_BOOLISH),
    OPT("Callee-ID-Name", JT_STRING),
    OPT("Callee-ID-Number", JT_STRING),
    OPT("Caller-ID-Name", JT_STRING),
    OPT("Caller-ID-Number", JT_STRING),
    OPT("Codecs", JT_ARRAY),
    OPT("Custom-Application-Vars", JT_OBJECT),
    OPT("Custom-Channel-Vars", JT_OBJECT),
    OPT("Custom-SIP-Headers", JT_OBJECT),
    OPTV("Enable-T38-Gateway", v_t38_gateway),
    OPT("Endpoint-Delay", JT_INTISH),
    OPT("Endpoint-Options", JT_OBJECT),
    OPT("Endpoint-Progress-Timeout", JT_INTISH),
    OPT("Endpoint-Timeout", JT_INTISH),
    OPTV("Endpoint-Type", v_endpoint_type),
    OPT("Failover", JT_ANY),
    OPT("Ignore-Early-Media", JT_BOOLISH),
    OPT("Outbound-Call-ID", JT_STRING),
    OPT("Presence-ID", JT_STRING),
    OPT("Proxy-IP", JT_STRING),
    OPT("Proxy-Zone", JT_STRING),
    OPT("Route", JT_STRING),
    OPTV("SIP-Transport", v_ep_sip_transport),
    OPT("SIP-Invite-Parameters", JT_ARRAY),
    OPT("To-DID", JT_STRING),
    OPT("To-IP", JT_STRING),
    OPT("To-Realm", JT_STRING),
    OPT("To-URI", JT_STRING),
    OPT("To-User", JT_STRING),
    OPT("To-Username", JT_STRING),
};
SCHEMA(endpoint_schema, "endpoint", endpoint_fields);

static const struct kapi_field cmd_bridge_fields[] = {
    REQSUB("Endpoints", &endpoint_schema),
    OPTV("Insert-At", v_insert_at),
    OPT("B-Leg-Events", JT_ARRAY),
    OPT("Callee-ID-Name", JT_STRING),
    OPT("Callee-ID-Number", JT_STRING),
    OPT("Caller-ID-Name", JT_STRING),
    OPT("Caller-ID-Number", JT_STRING),
    OPT("Continue-On-Fail", JT_BOOLISH),
    OPT("Custom-Application-Vars", JT_OBJECT),
    OPT("Custom-Channel-Vars", JT_OBJECT),
    OPT("Custom-SIP-Headers", JT_OBJECT),
    OPTV("Dial-Endpoint-Method", v_dial_method),
    OPTV("Enable-T38-Gateway", v_t38_gateway),
    OPT("Fail-On-Single-Reject", JT_ANY),
    OPT("Hold-Media", JT_STRING),
    OPT("Ignore-Early-Media", JT_BOOLISH),
    OPTV("Media", v_media3),
    OPT("Outbound-Caller-ID-Name", JT_STRING),
    OPT("Outbound-Caller-ID-Number", JT_STRING),
    OPT("Ringback", JT_STRING),
    OPTV("SIP-Transport", v_sip_transport),
    OPT("SIP-Invite-Parameters", JT_ARRAY),
    OPT("Secure-RTP", JT_BOOLISH),
    OPT("Timeout", JT_INTISH),
};
SCHEMA(cmd_bridge_schema, "bridge", cmd_bridge_fields);

static const struct kapi_field cmd_unbridge_fields[] = {
    OPTV("Insert-At", v_insert_at),
    OPTV("Leg", v_leg),
};
SCHEMA(cmd_unbridge_schema, "unbridge", cmd_unbridge_fields);

static const struct kapi_field cmd_play_fields[] = {
    REQ("Media-Name", JT_NESTRING),
    OPTV("Insert-At", v_insert_at),
    OPT("Endless-Playback", JT_BOOLISH),
    OPT("Format", JT_STRING),
    OPT("Language", JT_STRING),
    OPTV("Leg", v_leg),
    OPTF("Terminators", JT_ANY, FMT_TERMINATORS),
    OPT("Voice", JT_STRING),
    OPT("Loop-Count", JT_INTISH),
};
SCHEMA(cmd_play_schema, "play", cmd_play_fields);

static const struct kapi_field cmd_tts_fields[] = {
    REQ("Text", JT_STRING),
    OPTV("Insert-At", v_insert_at),
    OPTF("Terminators", JT_ANY, FMT_TERMINATORS),
    OPTV("Voice", v_voice),
    OPT("Language", JT_STRING),
    OPT("Engine", JT_STRING),
    OPT("Conference-ID", JT_STRING),
    OPTV("Leg", v_leg),
};
SCHEMA(cmd_tts_schema, "tts", cmd_tts_fields);

static const struct kapi_field cmd_record_fields[] = {
    REQ("Media-Name", JT_NESTRING),
    OPTV("Insert-At", v_insert_at),
    OPT("Silence-Hits", JT_INTISH),
    OPT("Silence-Threshold", JT_INTISH),
    OPTF("Terminators", JT_ANY, FMT_TERMINATORS),
    OPT("Time-Limit", JT_INTISH),
};
SCHEMA(cmd_record_schema, "record", cmd_record_fields);

static const struct kapi_field cmd_record_call_fields[] = {
    REQV("Record-Action", v_record_action),
    OPTV("Insert-At", v_insert_at),
    OPT("Additional-Headers", JT_ARRAY),
    OPT("Channels-As-Stereo", JT_BOOLISH),
    OPT("Follow-Transfer", JT_BOOLISH),
    OPT("Media-Transfer-Destination", JT_STRING),
    OPTV("Media-Transfer-Method", v_transfer_method),
    OPT("Record-Min-Sec", JT_INTISH),
    OPT("Record-Sample-Rate", JT_INTEGER),
    OPT("Time-Limit", JT_INTISH),
    OPT("Media-Name", JT_STRING),
    OPT("Media-Recording-ID", JT_STRING),
};
SCHEMA(cmd_record_call_schema, "record_call", cmd_record_call_fields);

static const struct kapi_field cmd_pacd_fields[] = {
    REQ("Minimum-Digits", JT_INTISH),
    REQ("Maximum-Digits", JT_INTISH),
    REQ("Media-Name", JT_NESTRING),
    REQ("Media-Tries", JT_INTISH),
    REQ("Digits-Regex", JT_STRING),
    REQ("Timeout", JT_INTISH),
    REQF("Terminators", JT_ANY, FMT_TERMINATORS),
    OPTV("Insert-At", v_insert_at),
    OPT("Failed-Media-Name", JT_STRING),
};
SCHEMA(cmd_pacd_schema, "play_and_collect_digits", cmd_pacd_fields);

/* ?TONES_REQ_TONE_*. */
static const struct kapi_field tone_fields[] = {
    REQ("Frequencies", JT_ARRAY),
    REQ("Duration-ON", JT_INTISH),
    REQ("Duration-OFF", JT_INTISH),
    OPT("Volume", JT_SCALAR),
    OPT("Repeat", JT_INTISH),
};
SCHEMA(tone_schema, "tone", tone_fields);

static const struct kapi_field cmd_tones_fields[] = {
    REQSUB("Tones", &tone_schema),
    OPTV("Insert-At", v_insert_at),
    OPTF("Terminators", JT_ANY, FMT_TERMINATORS),
    OPT("Conference-ID", JT_STRING),
};
SCHEMA(cmd_tones_schema, "tones", cmd_tones_fields);

static const struct kapi_field cmd_send_dtmf_fields[] = {
    REQ("DTMFs", JT_NESTRING),
    OPTV("Insert-At", v_insert_at),
    OPT("Duration", JT_INTISH),
};
SCHEMA(cmd_send_dtmf_schema, "send_dtmf", cmd_send_dtmf_fields);

/* 4.3 requires Custom-Channel-Vars and Custom-Call-Vars; 5.x also
 * Custom-Application-Vars, which kz keeps optional. */
static const struct kapi_field cmd_set_fields[] = {
    REQ("Custom-Channel-Vars", JT_OBJECT),
    REQ("Custom-Call-Vars", JT_OBJECT),
    OPT("Custom-Application-Vars", JT_OBJECT),
    OPTV("Insert-At", v_insert_at),
};
SCHEMA(cmd_set_schema, "set", cmd_set_fields);

static const struct kapi_field cmd_respond_fields[] = {
    /* kz: a SIP status code ("486"), Kazoo only wants a string. */
    REQF("Response-Code", JT_STRING, FMT_SIP_CODE),
    OPT("Response-Message", JT_STRING),
    OPTV("Insert-At", v_insert_at),
};
SCHEMA(cmd_respond_schema, "respond", cmd_respond_fields);

static const struct kapi_field cmd_sleep_fields[] = {
    REQ("Time", JT_INTISH),
    OPTV("Insert-At", v_insert_at),
};
SCHEMA(cmd_sleep_schema, "sleep", cmd_sleep_fields);

static const struct kapi_field cmd_noop_fields[] = {
    OPTV("Insert-At", v_insert_at),
    OPT("Filter-Applications", JT_ARRAY),
    OPT("B-Leg-Events", JT_ARRAY),
};
SCHEMA(cmd_noop_schema, "noop", cmd_noop_fields);

static const struct kapi_field cmd_queue_fields[] = {
    REQF("Commands", JT_ARRAY, FMT_COMMANDS),
    OPTV("Insert-At", v_insert_at),
};
SCHEMA(cmd_queue_schema, "queue", cmd_queue_fields);

static const struct kapi_field cmd_redirect_fields[] = {
    REQ("Redirect-Contact", JT_NESTRING),
    OPT("Redirect-Server", JT_STRING),
    OPT("Redirect-Node", JT_STRING),
    OPTV("Insert-At", v_insert_at),
};
SCHEMA(cmd_redirect_schema, "redirect", cmd_redirect_fields);

static const struct kapi_field cmd_transfer_fields[] = {
    REQV("Transfer-Type", v_transfer_type),
    REQ("Transfer-To", JT_NESTRING),
    OPTV("Transfer-Leg", v_transfer_leg),
    OPT("Transfer-Context", JT_STRING),
    OPT("Caller-ID-Name", JT_STRING),
    OPT("Caller-ID-Number", JT_STRING),
    OPT("Custom-Channel-Vars", JT_OBJECT),
    OPTV("Insert-At", v_insert_at),
};
SCHEMA(cmd_transfer_schema, "transfer", cmd_transfer_fields);

static const struct kapi_field cmd_conference_fields[] = {
    REQ("Conference-ID", JT_NESTRING),
    OPT("Mute", JT_BOOLISH),
    OPT("Deaf", JT_BOOLISH),
    OPT("Moderator", JT_BOOLISH),
    OPT("Reinvite", JT_BOOLISH),
    OPT("Profile", JT_STRING),
    OPTV("Insert-At", v_insert_at),
};
SCHEMA(cmd_conference_schema, "conference", cmd_conference_fields);

/* playstop: Insert-At is fixed to "now" in Kazoo. */
static const char *const v_now[] = {"now", NULL};
static const struct kapi_field cmd_playstop_fields[] = {
    OPTV("Insert-At", v_now),
};
SCHEMA(cmd_playstop_schema, "playstop", cmd_playstop_fields);

const struct kapi_command kz_bus_kapi_commands[] = {
    {"answer", &cmd_plain_schema},
    {"progress", &cmd_plain_schema},
    {"ring", &cmd_ring_schema},
    {"hangup", &cmd_hangup_schema},
    {"park", &cmd_park_schema},
    {"bridge", &cmd_bridge_schema},
    {"unbridge", &cmd_unbridge_schema},
    {"play", &cmd_play_schema},
    {"playstop", &cmd_playstop_schema},
    {"tts", &cmd_tts_schema},
    {"record", &cmd_record_schema},
    {"record_call", &cmd_record_call_schema},
    {"play_and_collect_digits", &cmd_pacd_schema},
    {"tones", &cmd_tones_schema},
    {"send_dtmf", &cmd_send_dtmf_schema},
    {"set", &cmd_set_schema},
    {"respond", &cmd_respond_schema},
    {"sleep", &cmd_sleep_schema},
    {"noop", &cmd_noop_schema},
    {"echo", &cmd_plain_schema},
    {"queue", &cmd_queue_schema},
    {"redirect", &cmd_redirect_schema},
    {"transfer", &cmd_transfer_schema},
    {"conference", &cmd_conference_schema},
};
const size_t kz_bus_kapi_n_commands = COUNT(kz_bus_kapi_commands);

const struct kapi_command *kz_bus_kapi_command_find(const char *app) {
  if (!app) return NULL;
  for (size_t i = 0; i < kz_bus_kapi_n_commands; i++) {
    if (strcmp(kz_bus_kapi_commands[i].app, app) == 0) return &kz_bus_kapi_commands[i];
  }
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Call events: kapi_call.erl ?CALL_EVENT_*.  The allowed Event-Names are
 * the event profile ecallmgr ships (kz: Kazoo does not restrict them). */

static const char *const n_call_events[] = {
    "CHANNEL_CREATE", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_HOLD",
    "CHANNEL_UNHOLD", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_DATA", "CHANNEL_SYNC", "CHANNEL_DESTROY", "CHANNEL_METAFLOW",
    "CALL_UPDATE", "CALL_SECURE", "DTMF", "DETECTED_TONE", "RECORD_START",
    "RECORD_STOP", "PRESENCE_IN", "KZ_CDR", "HEARTBEAT", "ROUTE_WINNER",
    NULL};

static const struct kapi_field call_event_fields[] = {
    REQ("Call-ID", JT_NESTRING),
    OPTV("Call-Direction", v_direction),
    OPT("Application-Name", JT_STRING),
    OPT("Application-Response", JT_STRING),
    OPT("Application-Data", JT_ANY),
    OPT("Billing-Seconds", JT_INTISH),
    OPT("Duration-Seconds", JT_INTISH),
    OPT("Ringing-Seconds", JT_INTISH),
    OPT("Caller-ID-Name", JT_STRING),
    OPT("Caller-ID-Number", JT_STRING),
    OPT("Callee-ID-Name", JT_STRING),
    OPT("Callee-ID-Number", JT_STRING),
    OPT("Channel-State", JT_STRING),
    OPT("Channel-Call-State", JT_STRING),
    OPT("Channel-Answer-State", JT_STRING),
    OPT("Other-Leg-Call-ID", JT_STRING),
    OPT("DTMF-Digit", JT_STRING),
    OPT("DTMF-Duration", JT_INTISH),
    OPT("Hangup-Cause", JT_STRING),
    /* kz: "sip:486". */
    OPTF("Hangup-Code", JT_STRING, FMT_HANGUP_CODE),
    OPT("Disposition", JT_STRING),
    OPT("Timestamp", JT_INTISH),
    OPT("Custom-Channel-Vars", JT_OBJECT),
    OPT("Custom-SIP-Headers", JT_OBJECT),
    OPT("Fax-Info", JT_OBJECT),
    OPT("Media-Server", JT_STRING),
    OPT("Switch-Hostname", JT_STRING),
    OPT("Presence-ID", JT_STRING),
    OPT("Request", JT_STRING),
    OPT("From", JT_STRING),
    OPT("To", JT_STRING),
    OPT("Control-Queue", JT_STRING),
    OPT("Terminator", JT_STRING),
};
SCHEMA(call_event_schema, "call_event", call_event_fields);

/* ------------------------------------------------------------------ */
/* Nodes: kapi_nodes.erl                                                */

static const struct kapi_field advertise_fields[] = {
    REQ("Expires", JT_INTISH), /* milliseconds */
    OPT("Channels", JT_INTISH),
    OPT("Globals", JT_ANY),
    OPT("Media-Servers", JT_OBJECT),
    OPT("Node-Info", JT_ANY),
    OPT("Ports", JT_INTISH),
    OPT("Processes", JT_INTISH),
    OPT("Registrations", JT_INTISH),
    OPT("Used-Memory", JT_INTISH),
    OPT("Version", JT_STRING),
    OPT("WhApps", JT_OBJECT),
    OPT("Zone", JT_STRING),
};
SCHEMA(advertise_schema, "advertise", advertise_fields);

/* ------------------------------------------------------------------ */
/* Document changes: kapi_conf.erl ?CONF_DOC_UPDATE_*                   */

static const char *const n_doc_change[] = {
    "doc_created", "doc_edited", "doc_deleted", "db_created", "db_edited",
    "db_deleted", NULL};

static const struct kapi_field doc_change_fields[] = {
    REQ("ID", JT_NESTRING),
    REQ("Database", JT_NESTRING),
    /* kz: Type is required because the routing key needs it; Kazoo's
     * publisher always sets it. */
    REQ("Type", JT_NESTRING),
    OPT("Rev", JT_STRING),
    OPT("Account-ID", JT_STRING),
    OPT("Date-Created", JT_INTISH),
    OPT("Date-Modified", JT_INTISH),
    OPT("Doc", JT_OBJECT),
    OPT("Is-Soft-Deleted", JT_BOOLISH),
    OPT("Version", JT_ANY),
    OPT("Origin-Cache", JT_ANY),
};
SCHEMA(doc_change_schema, "doc_change", doc_change_fields);

/* ------------------------------------------------------------------ */
/* Offnet: kapi_offnet_resource.erl/.hrl                                */

static const struct kapi_field offnet_req_fields[] = {
    REQV("Application-Name", v_offnet_app),
    REQV("Resource-Type", v_offnet_resource),
    REQ("To-DID", JT_NESTRING),
    OPT("Account-ID", JT_STRING),
    OPT("Account-Realm", JT_STRING),
    OPT("Application-Data", JT_ANY),
    OPT("Body", JT_STRING),
    OPT("Bypass-E164", JT_BOOLISH),
    OPT("B-Leg-Events", JT_ARRAY),
    OPT("Call-ID", JT_STRING),
    OPT("Custom-Application-Vars", JT_OBJECT),
    OPT("Custom-Channel-Vars", JT_OBJECT),
    OPT("Control-Queue", JT_STRING),
    OPT("Custom-SIP-Headers", JT_OBJECT),
    OPT("Enable-T38-Gateway", JT_STRING),
    OPT("Emergency-Caller-ID-Name", JT_STRING),
    OPT("Emergency-Caller-ID-Number", JT_STRING),
    OPT("Flags", JT_ARRAY),
    OPT("Force-Fax", JT_BOOLISH),
    OPT("Force-Outbound", JT_BOOLISH),
    OPT("Format-From-URI", JT_BOOLISH),
    OPT("From-URI-Realm", JT_STRING),
    OPT("Group-ID", JT_STRING),
    OPT("Hold-Media", JT_STRING),
    OPT("Hunt-Account-ID", JT_STRING),
    OPT("Ignore-Early-Media", JT_BOOLISH),
    OPTV("Media", v_media3),
    OPTV("Mode", v_eavesdrop_mode),
    OPT("Outbound-Call-ID", JT_STRING),
    OPT("Outbound-Caller-ID-Name", JT_STRING),
    OPT("Outbound-Caller-ID-Number", JT_STRING),
    OPT("Presence-ID", JT_STRING),
    OPT("Requestor-Custom-Channel-Vars", JT_OBJECT),
    OPT("Requestor-Custom-SIP-Headers", JT_OBJECT),
    OPT("Ringback", JT_STRING),
    OPT("Timeout", JT_INTISH),
};
SCHEMA(offnet_req_schema, "offnet_req", offnet_req_fields);

static const struct kapi_field offnet_resp_fields[] = {
    REQ("Response-Message", JT_STRING),
    OPT("Error-Message", JT_STRING),
    /* kz: "sip:NNN", the form stepswitch sends. */
    OPTF("Response-Code", JT_STRING, FMT_HANGUP_CODE),
    OPT("Call-ID", JT_STRING),
    OPT("Resource-Response", JT_OBJECT),
    OPT("Control-Queue", JT_STRING),
};
SCHEMA(offnet_resp_schema, "offnet_resp", offnet_resp_fields);

/* ------------------------------------------------------------------ */
/* The types                                                            */

#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})

const struct kapi_def kz_bus_kapi_defs[KZ_KAPI_TYPE_COUNT] = {
    [KZ_KAPI_UNKNOWN] = {KZ_KAPI_UNKNOWN, "unknown", NULL, NULL, NULL, NULL,
                         NULL},
    [KZ_KAPI_AUTHN_REQ] = {KZ_KAPI_AUTHN_REQ, "authn_req", "directory",
                           NAMES("authn_req"), "callmgr", &authn_req_schema,
                           NULL},
    [KZ_KAPI_AUTHN_RESP] = {KZ_KAPI_AUTHN_RESP, "authn_resp", "directory",
                            NAMES("authn_resp"), "targeted",
                            &authn_resp_schema, NULL},
    [KZ_KAPI_AUTHN_ERR] = {KZ_KAPI_AUTHN_ERR, "authn_err", "directory",
                           NAMES("authn_err"), "targeted", &authn_err_schema,
                           NULL},
    [KZ_KAPI_REG_SUCCESS] = {KZ_KAPI_REG_SUCCESS, "reg_success", "directory",
                             NAMES("reg_success"), "registrar",
                             &reg_success_schema, NULL},
    [KZ_KAPI_REG_QUERY] = {KZ_KAPI_REG_QUERY, "reg_query", "directory",
                           NAMES("reg_query"), "registrar", &reg_query_schema,
                           NULL},
    [KZ_KAPI_REG_QUERY_RESP] = {KZ_KAPI_REG_QUERY_RESP, "reg_query_resp",
                                "directory", NAMES("reg_query_resp"),
                                "targeted", &reg_query_resp_schema, NULL},
    [KZ_KAPI_REG_QUERY_ERR] = {KZ_KAPI_REG_QUERY_ERR, "reg_query_error",
                               "directory", NAMES("reg_query_error"),
                               "targeted", &reg_query_err_schema, NULL},
    [KZ_KAPI_REG_FLUSH] = {KZ_KAPI_REG_FLUSH, "reg_flush", "directory",
                           NAMES("reg_flush"), "registrar", &reg_flush_schema,
                           NULL},
    [KZ_KAPI_REG_SYNC] = {KZ_KAPI_REG_SYNC, "reg_sync", "directory",
                          NAMES("reg_sync"), "registrar", &reg_sync_schema,
                          NULL},
    [KZ_KAPI_ROUTE_REQ] = {KZ_KAPI_ROUTE_REQ, "route_req", "dialplan",
                           NAMES("route_req"), "callmgr", &route_req_schema,
                           NULL},
    [KZ_KAPI_ROUTE_RESP] = {KZ_KAPI_ROUTE_RESP, "route_resp", "dialplan",
                            NAMES("route_resp"), "targeted",
                            &route_resp_schema, kz_bus_kapi_extra_route_resp},
    [KZ_KAPI_ROUTE_WIN] = {KZ_KAPI_ROUTE_WIN, "route_win", "dialplan",
                           NAMES("route_win"), "targeted", &route_win_schema,
                           NULL},
    [KZ_KAPI_CALL_COMMAND] = {KZ_KAPI_CALL_COMMAND, "call_command", "call",
                              NAMES("command"), "callctl",
                              &call_command_schema, kz_bus_kapi_extra_call_command},
    [KZ_KAPI_CALL_EVENT] = {KZ_KAPI_CALL_EVENT, "call_event", "call_event",
                            n_call_events, "callevt", &call_event_schema,
                            kz_bus_kapi_extra_call_event},
    [KZ_KAPI_NODES_ADVERTISE] = {KZ_KAPI_NODES_ADVERTISE, "advertise",
                                 "nodes", NAMES("advertise"), "nodes",
                                 &advertise_schema, NULL},
    [KZ_KAPI_DOC_CHANGE] = {KZ_KAPI_DOC_CHANGE, "doc_change", "configuration",
                            n_doc_change, "configuration", &doc_change_schema,
                            NULL},
    [KZ_KAPI_OFFNET_REQ] = {KZ_KAPI_OFFNET_REQ, "offnet_req", "resource",
                            NAMES("offnet_req"), "resources",
                            &offnet_req_schema, NULL},
    [KZ_KAPI_OFFNET_RESP] = {KZ_KAPI_OFFNET_RESP, "offnet_resp", "resource",
                             NAMES("offnet_resp"), "targeted",
                             &offnet_resp_schema, NULL},
};

const struct kapi_def *kz_bus_kapi_def_of(enum kz_kapi_type type) {
  if ((int)type <= (int)KZ_KAPI_UNKNOWN || (int)type >= (int)KZ_KAPI_TYPE_COUNT)
    return NULL;
  return &kz_bus_kapi_defs[type];
}
