/* frame.c — encoding and decoding of the bus wire protocol's frames, driven by one layout table. */
#include <string.h>

#include "kz/bus_wire.h"
#include "kz/error.h"

/* Each op's fields in order, one letter a field:
 *   V version u8   T type u8   F flags u8   N no_ack u8   R redelivered u8
 *   S status u8    C code u16  H heartbeat_ms u32
 *   c consumer u64 g tag u64   p publish_id u64
 *   n name  q queue  x exchange  k key  y content_type  t text  (str)
 *   b body (blob) */
static const struct {
  const char *name;
  const char *layout;
} ops[KZ_BUS_WIRE_OP_COUNT] = {
    [KZ_BUS_WIRE_HELLO] = {"HELLO", "VH"},
    [KZ_BUS_WIRE_HELLO_OK] = {"HELLO_OK", "VH"},
    [KZ_BUS_WIRE_HEARTBEAT] = {"HEARTBEAT", ""},
    [KZ_BUS_WIRE_DECLARE_EXCHANGE] = {"DECLARE_EXCHANGE", "Tn"},
    [KZ_BUS_WIRE_DECLARE_QUEUE] = {"DECLARE_QUEUE", "Fn"},
    [KZ_BUS_WIRE_DELETE_QUEUE] = {"DELETE_QUEUE", "n"},
    [KZ_BUS_WIRE_BIND] = {"BIND", "qxk"},
    [KZ_BUS_WIRE_UNBIND] = {"UNBIND", "qxk"},
    [KZ_BUS_WIRE_CONSUME] = {"CONSUME", "cNq"},
    [KZ_BUS_WIRE_CANCEL] = {"CANCEL", "c"},
    [KZ_BUS_WIRE_PUBLISH] = {"PUBLISH", "pxkyb"},
    [KZ_BUS_WIRE_ACK] = {"ACK", "g"},
    [KZ_BUS_WIRE_DELIVER] = {"DELIVER", "cgRqxkyb"},
    [KZ_BUS_WIRE_CONFIRM] = {"CONFIRM", "pS"},
    [KZ_BUS_WIRE_ERROR] = {"ERROR", "Ct"},
};

const char *kz_bus_wire_op_name(int op) {
  if (op <= 0 || op >= KZ_BUS_WIRE_OP_COUNT) return "?";
  return ops[op].name;
}

static const char *layout_of(int op) {
  if (op <= 0 || op >= KZ_BUS_WIRE_OP_COUNT) return NULL;
  return ops[op].layout;
}

/* Where each field letter lives in the frame struct. */
static uint8_t *u8_field(struct kz_bus_wire_frame *f, char c) {
  switch (c) {
    case 'V': return &f->version;
    case 'T': return &f->type;
    case 'F': return &f->flags;
    case 'N': return &f->no_ack;
    case 'R': return &f->redelivered;
    case 'S': return &f->status;
  }
  return NULL;
}

static uint64_t *u64_field(struct kz_bus_wire_frame *f, char c) {
  switch (c) {
    case 'c': return &f->consumer;
    case 'g': return &f->tag;
    case 'p': return &f->publish_id;
  }
  return NULL;
}

static struct kz_slice *slice_field(struct kz_bus_wire_frame *f, char c) {
  switch (c) {
    case 'n': return &f->name;
    case 'q': return &f->queue;
    case 'x': return &f->exchange;
    case 'k': return &f->key;
    case 'y': return &f->content_type;
    case 't': return &f->text;
    case 'b': return &f->body;
  }
  return NULL;
}

static void put_be(uint8_t *p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}

static uint64_t get_be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

static int append_be(struct kz_buf *b, uint64_t v, int n) {
  uint8_t tmp[8];
  put_be(tmp, v, n);
  return kz_buf_append(b, tmp, (size_t)n);
}

int kz_bus_wire_encode(struct kz_buf *out, const struct kz_bus_wire_frame *f) {
  if (!out || !f) return KZ_EINVAL;
  const char *layout = layout_of((int)f->op);
  if (!layout) return KZ_EINVAL;
  /* The frame struct is only read; the field lookups take a mutable
   * pointer for symmetry with decoding. */
  struct kz_bus_wire_frame *mf = (struct kz_bus_wire_frame *)f;
  size_t start = out->len;
  int rc = append_be(out, 0, 4); /* length, patched below */
  if (!rc) rc = kz_buf_append_byte(out, (uint8_t)f->op);
  for (const char *c = layout; !rc && *c; c++) {
    uint8_t *u8 = u8_field(mf, *c);
    uint64_t *u64 = u64_field(mf, *c);
    struct kz_slice *s = slice_field(mf, *c);
    if (u8) {
      rc = kz_buf_append_byte(out, *u8);
    } else if (*c == 'C') {
      rc = append_be(out, f->code, 2);
    } else if (*c == 'H') {
      rc = append_be(out, f->heartbeat_ms, 4);
    } else if (u64) {
      rc = append_be(out, *u64, 8);
    } else if (s && *c == 'b') {
      if (s->len > KZ_BUS_WIRE_MAX_FRAME) {
        rc = KZ_EMSGSIZE;
        break;
      }
      rc = append_be(out, s->len, 4);
      if (!rc) rc = kz_buf_append(out, s->p, s->len);
    } else if (s) {
      if (s->len > 0xffff) {
        rc = KZ_ERANGE;
        break;
      }
      rc = append_be(out, s->len, 2);
      if (!rc) rc = kz_buf_append(out, s->p, s->len);
    }
  }
  size_t flen = out->len - start - 4;
  if (!rc && flen > KZ_BUS_WIRE_MAX_FRAME) rc = KZ_EMSGSIZE;
  if (rc) {
    kz_buf_truncate(out, start);
    return rc;
  }
  put_be(out->data + start, flen, 4);
  return 0;
}

int kz_bus_wire_decode(const uint8_t *data, size_t len,
                       struct kz_bus_wire_frame *f, size_t *used) {
  if (!f || !used || (!data && len)) return KZ_EINVAL;
  if (len < 4) return KZ_EAGAIN;
  uint64_t flen = get_be(data, 4);
  if (flen > KZ_BUS_WIRE_MAX_FRAME) return KZ_EMSGSIZE;
  if (flen == 0) return KZ_EPROTO;
  if (len - 4 < flen) return KZ_EAGAIN;
  const uint8_t *p = data + 5, *end = data + 4 + flen;
  memset(f, 0, sizeof *f);
  f->op = (enum kz_bus_wire_op)data[4];
  const char *layout = layout_of(data[4]);
  if (!layout) return KZ_EPROTO;
  for (const char *c = layout; *c; c++) {
    size_t left = (size_t)(end - p);
    uint8_t *u8 = u8_field(f, *c);
    uint64_t *u64 = u64_field(f, *c);
    struct kz_slice *s = slice_field(f, *c);
    if (u8) {
      if (left < 1) return KZ_EPROTO;
      *u8 = *p++;
    } else if (*c == 'C') {
      if (left < 2) return KZ_EPROTO;
      f->code = (uint16_t)get_be(p, 2);
      p += 2;
    } else if (*c == 'H') {
      if (left < 4) return KZ_EPROTO;
      f->heartbeat_ms = (uint32_t)get_be(p, 4);
      p += 4;
    } else if (u64) {
      if (left < 8) return KZ_EPROTO;
      *u64 = get_be(p, 8);
      p += 8;
    } else if (s) {
      int n = *c == 'b' ? 4 : 2;
      if (left < (size_t)n) return KZ_EPROTO;
      uint64_t sl = get_be(p, n);
      p += n;
      if (sl > (uint64_t)(end - p)) return KZ_EPROTO;
      *s = kz_slice_make(p, (size_t)sl);
      p += sl;
    }
  }
  if (p != end) return KZ_EPROTO;
  *used = (size_t)(4 + flen);
  return 0;
}
