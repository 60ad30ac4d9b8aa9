/* dialog.c — SIP dialogs (RFC 3261 §12): creation, route sets, CSeq order, target refresh, in-dialog requests. */
#include "kz/sip_dialog.h"

#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sip_build.h"

static void free_routes(struct kz_sip_dialog_route *r, size_t n) {
  for (size_t i = 0; i < n; i++) {
    kz_free(r[i].value);
    kz_free(r[i].uri);
  }
  kz_free(r);
}

static void dialog_dtor(void *obj) {
  struct kz_sip_dialog *d = obj;
  kz_free(d->call_id);
  kz_free(d->local_tag);
  kz_free(d->remote_tag);
  kz_free(d->local_uri);
  kz_free(d->remote_uri);
  kz_free(d->remote_target);
  free_routes(d->routes, d->nroutes);
}

/* A copy of a header slice, unfolded, as a C string (NULL on ENOMEM). */
static char *dup_unfold(struct kz_slice s) {
  struct kz_buf b = {0};
  if (kz_sip_unfold(&b, s) || kz_buf_append_byte(&b, 0)) {
    kz_buf_free(&b);
    return NULL;
  }
  return (char *)b.data;
}

/* "display <uri>" or "<uri>": the address without header parameters
 * (the tag is the dialog's, other parameters are not dialog state). */
static char *name_addr(const struct kz_sip_addr *a) {
  struct kz_buf b = {0};
  int rc = 0;
  if (a->display.len) {
    rc = kz_sip_unfold(&b, a->display);
    if (!rc) rc = kz_buf_append_byte(&b, ' ');
  }
  if (!rc) rc = kz_buf_append_byte(&b, '<');
  if (!rc) rc = kz_buf_append_slice(&b, a->uri.raw);
  if (!rc) rc = kz_buf_append(&b, ">", 2); /* with the NUL */
  if (rc) {
    kz_buf_free(&b);
    return NULL;
  }
  return (char *)b.data;
}

/* Replaces the route set with the Record-Route values of m, reversed
 * on the UAC side (§12.1.2) and in order on the UAS side (§12.1.1).
 * The old set stays on failure. */
static int set_routes(struct kz_sip_dialog *d, const struct kz_sip_msg *m, bool reverse) {
  size_t n = m->nrroutes;
  struct kz_sip_dialog_route *r = n ? kz_calloc(n, sizeof *r) : NULL;
  if (n && !r) return KZ_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const struct kz_sip_addr *a = &m->rroutes[reverse ? n - 1 - i : i];
    r[i].value = dup_unfold(a->raw);
    r[i].uri = kz_slice_dup(a->uri.raw);
    r[i].lr = kz_sip_param_get(a->uri.params, "lr", NULL);
    if (!r[i].value || !r[i].uri) {
      free_routes(r, n);
      return KZ_ENOMEM;
    }
  }
  free_routes(d->routes, d->nroutes);
  d->routes = r;
  d->nroutes = n;
  return 0;
}

static int set_target(struct kz_sip_dialog *d, const struct kz_sip_msg *m) {
  char *t = kz_slice_dup(m->contacts[0].uri.raw);
  if (!t) return KZ_ENOMEM;
  kz_free(d->remote_target);
  d->remote_target = t;
  return 0;
}

/* The part both constructors share once the roles are known. */
static int dialog_make(struct kz_sip_dialog **out, const struct kz_sip_msg *req,
                       const struct kz_sip_msg *target_src, bool uac,
                       const struct kz_sip_addr *local, struct kz_slice local_tag,
                       const struct kz_sip_addr *remote, struct kz_slice remote_tag,
                       const struct kz_sip_msg *rr_src, uint16_t status) {
  struct kz_sip_dialog *d = kz_obj_alloc(sizeof *d, dialog_dtor);
  if (!d) return KZ_ENOMEM;
  d->uac = uac;
  d->state = status >= 200 ? KZ_SIP_DIALOG_CONFIRMED : KZ_SIP_DIALOG_EARLY;
  d->secure = req->ruri.scheme == KZ_SIP_SCHEME_SIPS;
  d->call_id = dup_unfold(req->call_id);
  d->local_tag = kz_slice_dup(local_tag);
  d->remote_tag = kz_slice_dup(remote_tag);
  d->local_uri = name_addr(local);
  d->remote_uri = name_addr(remote);
  int rc = 0;
  if (!d->call_id || !d->local_tag || !d->remote_tag || !d->local_uri || !d->remote_uri)
    rc = KZ_ENOMEM;
  if (!rc) rc = set_target(d, target_src);
  if (!rc) rc = set_routes(d, rr_src, uac);
  if (rc) {
    kz_deref(d);
    return rc;
  }
  if (uac) {
    d->local_cseq = req->cseq.num;
  } else {
    d->remote_cseq = req->cseq.num;
    d->remote_cseq_set = true;
  }
  *out = d;
  return 0;
}

int kz_sip_dialog_new_uac(struct kz_sip_dialog **out, const struct kz_sip_msg *req,
                          const struct kz_sip_msg *resp) {
  if (!out || !req || !resp || !req->is_request || resp->is_request || resp->status <= 100 ||
      resp->status >= 300 || !resp->to.tag.len)
    return KZ_EINVAL;
  if (!resp->ncontacts || resp->contact_star || !req->from.tag.len) return KZ_EPROTO;
  return dialog_make(out, req, resp, true, &req->from, req->from.tag, &req->to, resp->to.tag,
                     resp, resp->status);
}

int kz_sip_dialog_new_uas(struct kz_sip_dialog **out, const struct kz_sip_msg *req,
                          const struct kz_sip_msg *resp) {
  if (!out || !req || !resp || !req->is_request || resp->is_request || resp->status <= 100 ||
      resp->status >= 300)
    return KZ_EINVAL;
  if (!req->ncontacts || req->contact_star || !resp->to.tag.len) return KZ_EPROTO;
  /* An RFC 2543 peer may send no From tag: the remote tag is then empty. */
  struct kz_slice rtag = req->from.tag.p ? req->from.tag : KZ_SLICE_LIT("");
  return dialog_make(out, req, req, false, &req->to, resp->to.tag, &req->from, rtag, req,
                     resp->status);
}

static bool tag_eq(struct kz_slice tag, const char *s) {
  return kz_slice_eq(tag.p ? tag : KZ_SLICE_LIT(""), kz_slice_cstr(s));
}

bool kz_sip_dialog_matches(const struct kz_sip_dialog *d, const struct kz_sip_msg *msg) {
  if (!d || !msg) return false;
  struct kz_buf cid = {0};
  bool same = kz_sip_unfold(&cid, msg->call_id) == 0 &&
              kz_slice_eq(kz_buf_slice(&cid), kz_slice_cstr(d->call_id));
  kz_buf_free(&cid);
  if (!same) return false;
  if (msg->is_request)
    return tag_eq(msg->from.tag, d->remote_tag) && tag_eq(msg->to.tag, d->local_tag);
  return tag_eq(msg->from.tag, d->local_tag) && tag_eq(msg->to.tag, d->remote_tag);
}

static bool target_refresh(enum kz_sip_method m) {
  return m == KZ_SIP_METHOD_INVITE || m == KZ_SIP_METHOD_UPDATE;
}

int kz_sip_dialog_on_request(struct kz_sip_dialog *d, const struct kz_sip_msg *req) {
  if (!d || !req || !req->is_request || !kz_sip_dialog_matches(d, req)) return KZ_EINVAL;
  if (req->method == KZ_SIP_METHOD_ACK || req->method == KZ_SIP_METHOD_CANCEL) return 0;
  if (d->remote_cseq_set && req->cseq.num <= d->remote_cseq) return KZ_ERANGE;
  if (target_refresh(req->method) && req->ncontacts && !req->contact_star) {
    int rc = set_target(d, req);
    if (rc) return rc;
  }
  d->remote_cseq = req->cseq.num;
  d->remote_cseq_set = true;
  return 0;
}

int kz_sip_dialog_on_response(struct kz_sip_dialog *d, const struct kz_sip_msg *resp) {
  if (!d || !resp || resp->is_request || !kz_sip_dialog_matches(d, resp)) return KZ_EINVAL;
  int rc = 0;
  if (resp->status > 100 && resp->status < 300 && target_refresh(resp->cseq.method) &&
      resp->ncontacts && !resp->contact_star)
    rc = set_target(d, resp);
  if (!rc && d->state == KZ_SIP_DIALOG_EARLY && resp->status >= 200 && resp->status < 300 &&
      resp->cseq.method == KZ_SIP_METHOD_INVITE) {
    if (d->uac) rc = set_routes(d, resp, true);
    if (!rc) d->state = KZ_SIP_DIALOG_CONFIRMED;
  }
  return rc;
}

void kz_sip_dialog_confirm(struct kz_sip_dialog *d) {
  if (d) d->state = KZ_SIP_DIALOG_CONFIRMED;
}

const char *kz_sip_dialog_next_hop(const struct kz_sip_dialog *d) {
  if (!d) return NULL;
  return d->nroutes ? d->routes[0].uri : d->remote_target;
}

/* A URI as a Request-URI: without its "?headers" part, which a
 * Request-URI may not carry (§19.1.1). */
static struct kz_slice ruri_of(const char *uri) {
  struct kz_slice s = kz_slice_cstr(uri);
  long q = kz_slice_find_char(s, '?');
  return q < 0 ? s : kz_slice_sub(s, 0, (size_t)q);
}

int kz_sip_dialog_build_request(struct kz_sip_dialog *d, struct kz_buf *out,
                                const struct kz_sip_dialog_req_spec *spec, struct kz_prng *prng) {
  if (!d || !out || !spec || !spec->method || !spec->via_sent_by.len || !d->local_tag[0] ||
      (!prng && !spec->branch.len))
    return KZ_EINVAL;
  bool reuse = !strcmp(spec->method, "ACK") || !strcmp(spec->method, "CANCEL");
  uint32_t cseq = spec->cseq;
  if (!cseq) {
    if (d->local_cseq == 0) {
      if (!prng) return KZ_EINVAL;
      cseq = (uint32_t)kz_prng_range(prng, 1, 0x7fffffffu); /* §12.2.1.1: empty → random */
    } else {
      cseq = reuse ? d->local_cseq : d->local_cseq + 1;
    }
  }
  /* §12.2.1.1: Request-URI and Route from the route set. */
  size_t nr = d->nroutes;
  struct kz_slice *routes = NULL;
  struct kz_buf last = {0};
  struct kz_slice ruri;
  int rc = 0;
  if (nr && !d->routes[0].lr) {
    ruri = ruri_of(d->routes[0].uri);
    routes = kz_calloc(nr, sizeof *routes);
    rc = routes ? kz_buf_printf(&last, "<%s>", d->remote_target) : KZ_ENOMEM;
    if (!rc) {
      for (size_t i = 1; i < nr; i++) routes[i - 1] = kz_slice_cstr(d->routes[i].value);
      routes[nr - 1] = kz_buf_slice(&last);
    }
  } else {
    ruri = kz_slice_cstr(d->remote_target);
    if (nr) {
      routes = kz_calloc(nr, sizeof *routes);
      if (!routes) rc = KZ_ENOMEM;
      for (size_t i = 0; routes && i < nr; i++) routes[i] = kz_slice_cstr(d->routes[i].value);
    }
  }
  if (!rc) {
    struct kz_sip_req_spec rs = {
        .method = spec->method,
        .ruri = ruri,
        .via_transport = spec->via_transport,
        .via_sent_by = spec->via_sent_by,
        .via_params = spec->via_params,
        .branch = spec->branch,
        .from = kz_slice_cstr(d->local_uri),
        .from_tag = kz_slice_cstr(d->local_tag),
        .to = kz_slice_cstr(d->remote_uri),
        .to_tag = kz_slice_cstr(d->remote_tag),
        .call_id = kz_slice_cstr(d->call_id),
        .cseq = cseq,
        .routes = routes,
        .nroutes = nr,
        .contact = spec->contact,
        .extra_headers = spec->extra_headers,
        .content_type = spec->content_type,
        .body = spec->body,
    };
    rc = kz_sip_build_request(out, &rs, prng);
  }
  kz_free(routes);
  kz_buf_free(&last);
  if (!rc && cseq > d->local_cseq) d->local_cseq = cseq;
  return rc;
}
