/* kz/bus_wire.h — the bus's simple framed protocol (codec) and the backend speaking it over kz_env streams to the broker model. */
#ifndef KZ_BUS_WIRE_H
#define KZ_BUS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/buf.h"
#include "kz/bus_client.h"
#include "kz/env.h"

/* ------------------------------------------------------------------ */
/* The protocol
 *
 * One TCP-like stream per client, carrying frames both ways:
 *
 *   u32 length   big-endian, counts the bytes after it (op + fields),
 *                1 .. KZ_BUS_WIRE_MAX_FRAME
 *   u8  op       enum kz_bus_wire_op
 *   fields       in the order the op lists them below
 *
 * Field encodings: u8 / u16 / u32 / u64 are big-endian integers; str is
 * a u16 length then that many bytes (names, keys, texts; no NUL); blob
 * is a u32 length then the bytes (message bodies).  A frame whose fields
 * do not exactly fill its length is a protocol error: the peer closes
 * the stream.
 *
 *   op                  dir  fields
 *   HELLO           1   c>b  u8 version (1), u32 heartbeat_ms
 *   HELLO_OK        2   b>c  u8 version, u32 heartbeat_ms (what the broker
 *                            will use: the client's, clamped)
 *   HEARTBEAT       3   both (none)
 *   DECLARE_EXCHANGE 4  c>b  u8 type (kz_bus_exchange_type), str name
 *   DECLARE_QUEUE   5   c>b  u8 flags (1 exclusive, 2 auto_delete,
 *                            4 durable), str name
 *   DELETE_QUEUE    6   c>b  str name
 *   BIND            7   c>b  str queue, str exchange, str key
 *   UNBIND          8   c>b  str queue, str exchange, str key
 *   CONSUME         9   c>b  u64 consumer, u8 no_ack, str queue
 *   CANCEL         10   c>b  u64 consumer
 *   PUBLISH        11   c>b  u64 publish_id (0: no confirm wanted),
 *                            str exchange, str key, str content_type,
 *                            blob body
 *   ACK            12   c>b  u64 tag
 *   DELIVER        13   b>c  u64 consumer, u64 tag, u8 redelivered,
 *                            str queue, str exchange, str key,
 *                            str content_type, blob body
 *   CONFIRM        14   b>c  u64 publish_id, u8 status (0 ack, 1 nack)
 *   ERROR          15   b>c  u16 code (AMQP reply codes: 404 not found,
 *                            405 resource locked, 406 precondition
 *                            failed), str text
 *
 * Session: the client sends HELLO first and may send nothing else until
 * HELLO_OK; then anything, in order, applied in order by the broker
 * (one AMQP channel's worth of ordering).  Delivery tags count from 1
 * per connection.  ERROR does not end the session (unlike an AMQP
 * channel error: there is only one channel and it goes on).
 *
 * Heartbeats: each side sends HEARTBEAT when it has sent nothing for one
 * interval, and drops the connection when it has received nothing for
 * KZ_BUS_WIRE_HEARTBEAT_MISSES intervals — so a silent peer (a partition,
 * a stalled or crashed host that sends no reset) is noticed within 3
 * intervals on both sides. */

#define KZ_BUS_WIRE_VERSION 1
#define KZ_BUS_WIRE_PORT 5672
#define KZ_BUS_WIRE_MAX_FRAME ((uint32_t)8 << 20)
#define KZ_BUS_WIRE_HEARTBEAT_MISSES 3

enum kz_bus_wire_op {
  KZ_BUS_WIRE_HELLO = 1,
  KZ_BUS_WIRE_HELLO_OK,
  KZ_BUS_WIRE_HEARTBEAT,
  KZ_BUS_WIRE_DECLARE_EXCHANGE,
  KZ_BUS_WIRE_DECLARE_QUEUE,
  KZ_BUS_WIRE_DELETE_QUEUE,
  KZ_BUS_WIRE_BIND,
  KZ_BUS_WIRE_UNBIND,
  KZ_BUS_WIRE_CONSUME,
  KZ_BUS_WIRE_CANCEL,
  KZ_BUS_WIRE_PUBLISH,
  KZ_BUS_WIRE_ACK,
  KZ_BUS_WIRE_DELIVER,
  KZ_BUS_WIRE_CONFIRM,
  KZ_BUS_WIRE_ERROR,
  KZ_BUS_WIRE_OP_COUNT
};

enum {
  KZ_BUS_WIRE_Q_EXCLUSIVE = 1,
  KZ_BUS_WIRE_Q_AUTO_DELETE = 2,
  KZ_BUS_WIRE_Q_DURABLE = 4,
};

/* One frame, decoded or to encode.  Only the fields of `op` are used;
 * slices point into the decoded bytes (or the caller's memory). */
struct kz_bus_wire_frame {
  enum kz_bus_wire_op op;
  uint8_t version;
  uint8_t type;        /* DECLARE_EXCHANGE */
  uint8_t flags;       /* DECLARE_QUEUE */
  uint8_t no_ack;      /* CONSUME */
  uint8_t redelivered; /* DELIVER */
  uint8_t status;      /* CONFIRM */
  uint16_t code;       /* ERROR */
  uint32_t heartbeat_ms;
  uint64_t consumer;
  uint64_t tag;
  uint64_t publish_id;
  struct kz_slice name;
  struct kz_slice queue;
  struct kz_slice exchange;
  struct kz_slice key;
  struct kz_slice content_type;
  struct kz_slice text;
  struct kz_slice body;
};

/* The op's name ("PUBLISH"), "?" when out of range. */
const char *kz_bus_wire_op_name(int op);

/* Appends one frame to out.  Returns 0, KZ_EINVAL (unknown op), KZ_ERANGE
 * (a str over 65535 bytes) or KZ_EMSGSIZE (frame over
 * KZ_BUS_WIRE_MAX_FRAME), or KZ_ENOMEM; out is unchanged on error. */
int kz_bus_wire_encode(struct kz_buf *out, const struct kz_bus_wire_frame *f);

/* Decodes the frame at the start of data[0..len).  On 0 *f holds it
 * (slices into data) and *used the bytes it took.  Returns KZ_EAGAIN
 * (not all there yet: feed more), KZ_EMSGSIZE (declared length over the
 * maximum) or KZ_EPROTO (unknown op, fields not filling the frame). */
int kz_bus_wire_decode(const uint8_t *data, size_t len,
                       struct kz_bus_wire_frame *f, size_t *used);

/* ------------------------------------------------------------------ */
/* The backend                                                         */

struct kz_bus_wire_cfg {
  const struct kz_addr *brokers; /* copied; tried in order, then around */
  size_t n_brokers;
  uint64_t heartbeat_ns;     /* 0 = 1 s */
  uint64_t connect_timeout_ns; /* connect + HELLO; 0 = 2 s */
  uint64_t backoff_min_ns;   /* 0 = 50 ms */
  uint64_t backoff_max_ns;   /* 0 = 5 s */
};

/* Creates a wire backend on `env` and fills *out for kz_bus_new (which
 * owns it from then on and destroys it).  It starts connecting when the
 * bus attaches: broker 0 first; on connection loss or a failed attempt
 * it moves to the next broker (and back around), immediately after a
 * lost connection and with exponential backoff (with jitter from the
 * env's "bus.wire" stream) after failed attempts.  Returns 0, KZ_EINVAL
 * (no brokers) or KZ_ENOMEM. */
int kz_bus_wire_new(struct kz_bus_backend *out, struct kz_env *env,
                    const struct kz_bus_wire_cfg *cfg);

#endif /* KZ_BUS_WIRE_H */
