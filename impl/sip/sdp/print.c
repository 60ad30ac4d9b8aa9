/* print.c — struct kz_sdp back to SDP text in RFC 8866 field order with CRLF line ends. */
#include <inttypes.h>

#include "kz/error.h"
#include "kz/sdp.h"

/* Appends "<type>=<value>\r\n". */
static int line(struct kz_buf *o, char type, struct kz_slice v) {
  int rc = kz_buf_append_byte(o, (uint8_t)type);
  if (!rc) rc = kz_buf_append_byte(o, '=');
  if (!rc) rc = kz_buf_append_slice(o, v);
  if (!rc) rc = kz_buf_append(o, "\r\n", 2);
  return rc;
}

/* Slices go through append, never "%.*s": a hand-built one may be {NULL, 0}. */
static int fields(struct kz_buf *o, const struct kz_slice *f, size_t n) {
  int rc = 0;
  for (size_t i = 0; !rc && i < n; i++) {
    if (i) rc = kz_buf_append_byte(o, ' ');
    if (!rc) rc = kz_buf_append_slice(o, f[i]);
  }
  return rc;
}

static int conn_fields(struct kz_buf *o, const struct kz_sdp_conn *c) {
  struct kz_slice f[3] = {c->nettype, c->addrtype, c->addr};
  return fields(o, f, 3);
}

static int conn_line(struct kz_buf *o, const struct kz_sdp_conn *c) {
  int rc = kz_buf_append(o, "c=", 2);
  if (!rc) rc = conn_fields(o, c);
  if (!rc) rc = kz_buf_append(o, "\r\n", 2);
  return rc;
}

static int bw_lines(struct kz_buf *o, const struct kz_sdp_bw *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int rc = kz_buf_append(o, "b=", 2);
    if (!rc) rc = kz_buf_append_slice(o, b[i].type);
    if (!rc) rc = kz_buf_printf(o, ":%" PRIu64 "\r\n", b[i].value);
    if (rc) return rc;
  }
  return 0;
}

static int attr_lines(struct kz_buf *o, const struct kz_sdp_attr *a, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int rc = kz_buf_append(o, "a=", 2);
    if (!rc) rc = kz_buf_append_slice(o, a[i].name);
    if (!rc && a[i].has_value) rc = kz_buf_append_byte(o, ':');
    if (!rc && a[i].has_value) rc = kz_buf_append_slice(o, a[i].value);
    if (!rc) rc = kz_buf_append(o, "\r\n", 2);
    if (rc) return rc;
  }
  return 0;
}

static int media_lines(struct kz_buf *o, const struct kz_sdp_media *m) {
  int rc = kz_buf_append(o, "m=", 2);
  if (!rc) rc = kz_buf_append_slice(o, m->type);
  if (!rc) rc = kz_buf_printf(o, " %u", (unsigned)m->port);
  if (!rc && m->nports) rc = kz_buf_printf(o, "/%" PRIu32, m->nports);
  if (!rc) rc = kz_buf_append_byte(o, ' ');
  if (!rc) rc = kz_buf_append_slice(o, m->proto);
  for (size_t i = 0; !rc && i < m->nfmts; i++) {
    rc = kz_buf_append_byte(o, ' ');
    if (!rc) rc = kz_buf_append_slice(o, m->fmts[i]);
  }
  if (!rc) rc = kz_buf_append(o, "\r\n", 2);
  if (!rc && m->has_info) rc = line(o, 'i', m->info);
  for (size_t i = 0; !rc && i < m->nconns; i++) rc = conn_line(o, &m->conns[i]);
  if (!rc) rc = bw_lines(o, m->bws, m->nbws);
  if (!rc && m->has_key) rc = line(o, 'k', m->key);
  if (!rc) rc = attr_lines(o, m->attrs, m->nattrs);
  return rc;
}

int kz_sdp_print(const struct kz_sdp *sdp, struct kz_buf *out) {
  if (!sdp || !out) return KZ_EINVAL;
  const struct kz_sdp_origin *og = &sdp->origin;
  int rc = kz_buf_append(out, "v=0\r\n", 5);
  if (!rc) rc = kz_buf_append(out, "o=", 2);
  if (!rc) rc = fields(out, (struct kz_slice[2]){og->username, og->sess_id}, 2);
  if (!rc) rc = kz_buf_printf(out, " %" PRIu64 " ", og->sess_version);
  if (!rc) rc = conn_fields(out, &og->addr);
  if (!rc) rc = kz_buf_append(out, "\r\n", 2);
  if (!rc) rc = line(out, 's', sdp->name);
  if (!rc && sdp->has_info) rc = line(out, 'i', sdp->info);
  if (!rc && sdp->has_uri) rc = line(out, 'u', sdp->uri);
  for (size_t i = 0; !rc && i < sdp->nemails; i++) rc = line(out, 'e', sdp->emails[i]);
  for (size_t i = 0; !rc && i < sdp->nphones; i++) rc = line(out, 'p', sdp->phones[i]);
  if (!rc && sdp->has_conn) rc = conn_line(out, &sdp->conn);
  if (!rc) rc = bw_lines(out, sdp->bws, sdp->nbws);
  /* t= is mandatory; a hand-built description without one gets "0 0". */
  if (!rc && sdp->ntimes == 0) rc = kz_buf_append(out, "t=0 0\r\n", 7);
  for (size_t i = 0; !rc && i < sdp->ntimes; i++) {
    const struct kz_sdp_time *t = &sdp->times[i];
    rc = kz_buf_printf(out, "t=%" PRIu64 " %" PRIu64 "\r\n", t->start, t->stop);
    for (size_t k = 0; !rc && k < t->nrepeats; k++) rc = line(out, 'r', t->repeats[k]);
  }
  if (!rc && sdp->has_zone) rc = line(out, 'z', sdp->zone);
  if (!rc && sdp->has_key) rc = line(out, 'k', sdp->key);
  if (!rc) rc = attr_lines(out, sdp->attrs, sdp->nattrs);
  for (size_t i = 0; !rc && i < sdp->nmedia; i++) rc = media_lines(out, &sdp->media[i]);
  return rc;
}
