/* sipp_int.h — private model shared by the SIPp XML reader, the scenario loader and the engine. */
#ifndef KZ_SIPP_INT_H
#define KZ_SIPP_INT_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/buf.h"
#include "kz/sipp.h"

/* ---- Lenient XML tree (xml.c) ---- */

struct sx_attr {
  char *name;
  char *value; /* escapes and entities decoded, CRs removed */
};

struct sx_node {
  char *name;
  int line;
  struct sx_attr *attrs;
  size_t nattrs;
  char *cdata; /* concatenated CDATA sections (NULL when none), CRs removed */
  size_t cdata_len;
  int cdata_line; /* line of the first CDATA section */
  struct sx_node **kids;
  size_t nkids;
};

struct sx_warn {
  char **items;
  size_t n;
};

/* Parses the document and returns its root element in *out (free with
 * sx_free).  Lenient as described in kz/sipp.h; anything it tolerates
 * is appended to warn.  Returns 0, KZ_EPROTO (err filled) or KZ_ENOMEM. */
int sx_parse(struct sx_node **out, const char *data, size_t len, struct sx_warn *warn,
             struct kz_sipp_load_err *err, const char *file);
void sx_free(struct sx_node *n);
/* The value of attribute `name`, or NULL. */
const char *sx_attr(const struct sx_node *n, const char *name);
int sx_warn_add(struct sx_warn *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sx_warn_free(struct sx_warn *w);

/* ---- Message templates ---- */

enum tc_type {
  TC_LIT = 0,
  TC_SERVICE,
  TC_REMOTE_IP,
  TC_REMOTE_PORT,
  TC_LOCAL_IP,
  TC_LOCAL_IP_TYPE,
  TC_LOCAL_PORT,
  TC_TRANSPORT,
  TC_MEDIA_IP,
  TC_MEDIA_IP_TYPE,
  TC_MEDIA_PORT,
  TC_AUTO_MEDIA_PORT,
  TC_BRANCH,
  TC_CALL_ID,
  TC_CALL_NUMBER,
  TC_CSEQ,
  TC_LEN,
  TC_PEER_TAG_PARAM,
  TC_PID,
  TC_CLOCK_TICK,
  TC_TIMESTAMP,
  TC_ROUTES,
  TC_NEXT_URL,
  TC_LAST_HDR,        /* text: header name without ':'; flag value_only */
  TC_LAST_REQUEST_URI,
  TC_LAST_CSEQ_NUMBER,
  TC_FIELD,           /* num: field index */
  TC_VAR,             /* num: variable id */
  TC_AUTH,            /* text/text2: user/password, or NULL for the config's */
};

/* 32 bytes (fields ordered to leave no holes): expand walks every
 * component of a template for each message sent. */
struct tcomp {
  char *text;  /* literal bytes (LF already turned into CRLF) or a name */
  char *text2;
  uint32_t len;
  int offset;  /* +N / -N of the keyword */
  int num;
  uint8_t type; /* enum tc_type */
  bool value_only;
};

struct tmpl {
  struct tcomp *c;
  size_t n;
  /* c and every text/text2 share c's allocation (tmpl_pack): a message
   * is built by walking them all, so they sit together in memory. */
  bool packed;
};

/* ---- Actions ---- */

enum act_type {
  ACT_EREG = 0,
  ACT_ASSIGN,
  ACT_ASSIGNSTR,
  ACT_ADD,
  ACT_SUBTRACT,
  ACT_MULTIPLY,
  ACT_DIVIDE,
  ACT_TEST,
  ACT_STRCMP,
  ACT_LOG,
  ACT_WARNING,
  ACT_ERROR,
  ACT_JUMP,
  ACT_GETTIMEOFDAY,
};

enum ereg_where { EREG_MSG = 0, EREG_HDR, EREG_BODY, EREG_VAR };
enum cmp_op { CMP_EQ = 0, CMP_NE, CMP_GT, CMP_LT, CMP_GE, CMP_LE };

struct action {
  enum act_type type;
  int line;
  /* ereg */
  regex_t re;
  bool re_ok;
  enum ereg_where where;
  char *header; /* without ':' */
  int occurrence;
  bool check_it, check_inverse;
  int *assign;  /* variable ids; [0] gets the whole match */
  size_t nassign;
  /* arithmetic, test, strcmp, jump */
  int var_out;  /* -1 when none */
  int var_in;   /* -1 when none */
  int var_in2;  /* -1 when none */
  bool has_value;
  double value;
  char *str_value;
  enum cmp_op cmp;
  struct tmpl msg; /* log/warning/error/assignstr */
};

/* ---- Commands ---- */

enum cmd_type { CMD_SEND = 0, CMD_RECV, CMD_PAUSE, CMD_NOP };
enum pause_kind { PAUSE_DEFAULT = 0, PAUSE_FIXED, PAUSE_UNIFORM, PAUSE_VAR };

struct cmd {
  enum cmd_type type;
  int line;
  /* send */
  struct tmpl tmpl;
  bool is_request;
  char method[24];     /* request method, or "" for a response */
  bool is_invite, is_ack, is_cancel;
  uint32_t retrans_ms;
  /* recv */
  int recv_response;   /* 0 when a request is expected */
  char *recv_request;
  bool regexp_match;
  regex_t req_re;
  bool req_re_ok;
  char *cseq_methods;  /* " INVITE BYE " style list of methods sent before */
  int optional;        /* 0 no, 1 true, 2 global */
  uint32_t timeout_ms;
  bool rrs, auth;
  /* pause */
  enum pause_kind pause;
  uint32_t pause_ms, pause_min, pause_max;
  int pause_var;
  bool timewait;
  /* common */
  int next;            /* command index, -1 none */
  char *next_label;
  int test;            /* variable id, -1 none */
  uint32_t chance_ppm; /* branch probability, 1000000 = always */
  int on_timeout;      /* command index, -1 none */
  char *timeout_label;
  int condexec;        /* variable id, -1 none */
  bool condexec_inverse;
  int start_rtd, stop_rtd; /* rtd index + 1, 0 none */
  bool repeat_rtd;
  uint32_t lost_ppm;
  bool crlf;
  struct action *acts;
  size_t nacts;
};

struct label {
  char *name;
  size_t index;
};

struct kz_sipp_scenario {
  char *name;
  struct cmd *cmds;
  size_t ncmds, capcmds;
  struct label *labels;
  size_t nlabels;
  char **vars;        /* variable names, id = index */
  bool *var_global;
  size_t nvars;
  char rtd_names[KZ_SIPP_MAX_RTDS][16];
  uint32_t nrtd;
  uint32_t rt_bounds[KZ_SIPP_MAX_BUCKETS];
  uint32_t nrt;
  uint32_t cl_bounds[KZ_SIPP_MAX_BUCKETS];
  uint32_t ncl;
  int max_field;      /* highest [fieldN] used, -1 none */
  enum kz_sipp_role role;
  struct sx_warn warn;
};

/* The template helpers the engine needs from scenario.c. */
void tmpl_free(struct tmpl *t);

/* auth.c: SIPp-style lenient auth parameter lookup; returns false when
 * the parameter is missing. */
bool sipp_auth_param(struct kz_slice hdr, const char *name, struct kz_slice *val);

#endif /* KZ_SIPP_INT_H */
