/* print.c — writes a parsed SIP message back in canonical form (full header names, folds unfolded). */
#include "kz/error.h"
#include "sip_int.h"

int kz_sip_unfold(struct kz_buf *b, struct kz_slice v) {
  if (!v.p) return 0; /* absent */
  const char *p = v.p, *e = v.p + v.len, *chunk = p;
  while (p < e) {
    if (!kz_sip_is((unsigned char)*p, C_WS)) {
      p++;
      continue;
    }
    const char *ws = p;
    bool fold = false;
    while (p < e && kz_sip_is((unsigned char)*p, C_WS)) {
      if (*p == '\r' || *p == '\n') fold = true;
      p++;
    }
    if (!fold) continue;
    if (kz_buf_append(b, chunk, (size_t)(ws - chunk)) || kz_buf_append_byte(b, ' '))
      return KZ_ENOMEM;
    chunk = p;
  }
  return kz_buf_append(b, chunk, (size_t)(e - chunk)) ? KZ_ENOMEM : 0;
}

int kz_sip_msg_print(const struct kz_sip_msg *m, struct kz_buf *b) {
  if (!m || !b) return KZ_EINVAL;
  int rc;
  if (m->is_request)
    rc = kz_buf_append_slice(b, m->method_text) || kz_buf_append_byte(b, ' ') ||
         kz_buf_append_slice(b, m->ruri.raw) || kz_buf_append_cstr(b, " SIP/2.0\r\n");
  else
    rc = kz_buf_printf(b, "SIP/2.0 %03u ", (unsigned)m->status) ||
         kz_buf_append_slice(b, m->reason) || kz_buf_append_cstr(b, "\r\n");
  if (rc) return KZ_ENOMEM;
  for (size_t i = 0; i < m->nhdrs; i++) {
    const struct kz_sip_hdr *h = &m->hdrs[i];
    const char *name = kz_sip_hdr_name(h->id);
    rc = (name ? kz_buf_append_cstr(b, name) : kz_buf_append_slice(b, h->name)) ||
         kz_buf_append(b, ": ", 2) || kz_sip_unfold(b, h->value) ||
         kz_buf_append(b, "\r\n", 2);
    if (rc) return KZ_ENOMEM;
  }
  if (kz_buf_append(b, "\r\n", 2) || kz_buf_append_slice(b, m->body)) return KZ_ENOMEM;
  return 0;
}
