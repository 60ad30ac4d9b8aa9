/* kz/sip_dialog.h — SIP dialog state (RFC 3261 §12): creation on both sides, in-dialog requests, route sets, CSeq order. */
#ifndef KZ_SIP_DIALOG_H
#define KZ_SIP_DIALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/buf.h"
#include "kz/prng.h"
#include "kz/sip_msg.h"

enum kz_sip_dialog_state {
  KZ_SIP_DIALOG_EARLY = 0, /* created by a 1xx with a To tag */
  KZ_SIP_DIALOG_CONFIRMED  /* created or confirmed by a 2xx */
};

/* One entry of the route set. */
struct kz_sip_dialog_route {
  char *value; /* the full header value, e.g. "<sip:p1.example.com;lr>" */
  char *uri;   /* the URI alone */
  bool lr;     /* the URI has ;lr (loose router) */
};

/* A dialog.  Reference-counted (kz_ref/kz_deref); the fields are
 * readable, and change only through the functions below.  Strings are
 * NUL-terminated and owned by the dialog. */
struct kz_sip_dialog {
  enum kz_sip_dialog_state state;
  bool uac;           /* this side sent the dialog-creating request */
  bool secure;        /* the creating request had a sips Request-URI */
  char *call_id;
  char *local_tag;
  char *remote_tag;   /* "" when an RFC 2543 peer sent no From tag */
  char *local_uri;    /* name-addr for From (UAC) / To (UAS), no params */
  char *remote_uri;
  char *remote_target;                /* URI from the peer's Contact */
  struct kz_sip_dialog_route *routes; /* in the order requests carry them */
  size_t nroutes;
  uint32_t local_cseq;  /* last number used; 0 = empty (UAS before its first request) */
  uint32_t remote_cseq; /* last number seen; valid when remote_cseq_set */
  bool remote_cseq_set;
};

/* UAC side (§12.1.2): creates the dialog from the request it sent and a
 * 101-299 response with a To tag received for it.  Route set: the
 * response's Record-Route in reverse order; remote target: its Contact;
 * local CSeq: the request's; early for 1xx, confirmed for 2xx.
 * *out has one reference.  Returns 0, KZ_EINVAL (NULL, wrong kinds, a
 * status outside 101-299, or a response without To tag),
 * KZ_EPROTO (no Contact, or a request without From tag) or KZ_ENOMEM. */
int kz_sip_dialog_new_uac(struct kz_sip_dialog **out, const struct kz_sip_msg *req,
                          const struct kz_sip_msg *resp);

/* UAS side (§12.1.1): creates the dialog from a received request and
 * the 101-299 response the UAS sent for it (which carries the local To
 * tag).  Route set: the request's Record-Route in order; remote target:
 * its Contact; remote CSeq: the request's; local CSeq empty.
 * Returns 0, KZ_EINVAL, KZ_EPROTO (no Contact in the request, or no To
 * tag in the response) or KZ_ENOMEM. */
int kz_sip_dialog_new_uas(struct kz_sip_dialog **out, const struct kz_sip_msg *req,
                          const struct kz_sip_msg *resp);

/* True when msg belongs to the dialog: same Call-ID, and for a request
 * received From tag = remote tag and To tag = local tag; for a response
 * received, From tag = local tag and To tag = remote tag. */
bool kz_sip_dialog_matches(const struct kz_sip_dialog *d, const struct kz_sip_msg *msg);

/* A request received inside the dialog (§12.2.2).  Checks the CSeq
 * order (except for ACK and CANCEL, which reuse the number they refer
 * to): a number lower than or equal to the last one is refused with
 * KZ_ERANGE, and the TU answers 500 (Server Internal Error).  Otherwise
 * records it and, for target refresh requests (INVITE, UPDATE) with a
 * Contact, replaces the remote target.
 * Returns 0, KZ_EINVAL (not a request of this dialog), KZ_ERANGE or
 * KZ_ENOMEM. */
int kz_sip_dialog_on_request(struct kz_sip_dialog *d, const struct kz_sip_msg *req);

/* A response received inside the dialog (UAC side).  A 2xx to an INVITE
 * moves an early dialog to confirmed and recomputes the route set from
 * its Record-Route (§13.2.2.4); a 101-299 response to a target refresh
 * request (INVITE, UPDATE) with a Contact replaces the remote target.
 * Returns 0, KZ_EINVAL (not a response of this dialog) or KZ_ENOMEM. */
int kz_sip_dialog_on_response(struct kz_sip_dialog *d, const struct kz_sip_msg *resp);

/* UAS side: the UAS sent a 2xx for the creating request; an early
 * dialog becomes confirmed. */
void kz_sip_dialog_confirm(struct kz_sip_dialog *d);

/* What an in-dialog request needs besides the dialog state. */
struct kz_sip_dialog_req_spec {
  const char *method;            /* "BYE", "INVITE", "INFO", "ACK"... */
  struct kz_slice via_transport; /* "UDP" when not given */
  struct kz_slice via_sent_by;   /* required */
  struct kz_slice via_params;
  struct kz_slice branch;        /* drawn from prng when not given */
  uint32_t cseq;                 /* 0: next local number (ACK and CANCEL: the last one) */
  struct kz_slice contact;
  struct kz_slice extra_headers;
  struct kz_slice content_type;
  struct kz_slice body;
};

/* Builds a request inside the dialog (§12.2.1.1) into out: From with
 * the local tag, To with the remote tag, the Call-ID, the next local
 * CSeq (an empty local CSeq starts at a random number below 2^31 drawn
 * from prng; ACK and CANCEL reuse the last one), and the Request-URI and
 * Route set: empty route set → remote target, no Route; first route
 * loose (;lr) → remote target, Route = route set; first route strict →
 * Request-URI = first route's URI, Route = the rest followed by
 * <remote target>.  The local CSeq is advanced only on success.
 * Returns 0, KZ_EINVAL or KZ_ENOMEM. */
int kz_sip_dialog_build_request(struct kz_sip_dialog *d, struct kz_buf *out,
                                const struct kz_sip_dialog_req_spec *spec, struct kz_prng *prng);

/* The URI the next in-dialog request is sent towards (§8.1.2): the
 * first route's URI, or the remote target.  Borrowed from d. */
const char *kz_sip_dialog_next_hop(const struct kz_sip_dialog *d);

#endif /* KZ_SIP_DIALOG_H */
