/* kz/sip_txn.h — the SIP transaction layer (RFC 3261 §17): client and server, INVITE and non-INVITE, sans-I/O with explicit time. */
#ifndef KZ_SIP_TXN_H
#define KZ_SIP_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/env.h"
#include "kz/sip_msg.h"

/* Design (ngtcp2 style).  The transaction user (TU: a UA core, a proxy)
 * owns one struct kz_sip_txl and feeds it with explicit time `now`
 * (monotonic nanoseconds): received messages (kz_sip_txl_recv), its own
 * requests and responses, and the passing of time
 * (kz_sip_txl_next_expiry / kz_sip_txl_handle_expiry).  It never reads
 * a clock or touches a socket.
 *
 * Outputs go through two callbacks registered at creation:
 *  - send(arg, bytes, len, dest, transport): put bytes on the wire.  A
 *    non-zero return is a transport failure (RFC 3261 §17.1.4/§17.2.4):
 *    the layer reports KZ_SIP_TXL_EV_TRANSPORT_ERROR and terminates the
 *    transaction.
 *  - event(arg, ev): what the TU must know (new request, response,
 *    timeout, transport error, transaction terminated).
 * Callbacks run synchronously inside the call that caused them.  From an
 * event callback the TU may call every function of this header except
 * kz_sip_txl_free; the transaction named in an event stays valid for the
 * whole callback.
 *
 * Lifetime.  Transactions are reference-counted kz objects.  The layer
 * keeps one reference from creation until the transaction terminates
 * (KZ_SIP_TXL_EV_TERMINATED is the last event about it); a pointer the
 * TU got from an event or from kz_sip_txl_request is borrowed and valid
 * until then.  The TU may kz_ref a transaction to keep it longer (it then
 * kz_derefs it); a terminated transaction refuses every operation with
 * KZ_EINVAL.  kz_sip_txl_free terminates and releases all of them
 * without events.
 *
 * Matching.  Transactions live in a kz_map: client ones keyed by the top
 * Via branch and the CSeq method (§17.1.3); server ones by branch, top
 * Via sent-by and method, ACK looking up INVITE (§17.2.3).  A request
 * whose top Via branch lacks the "z9hG4bK" cookie is matched by the
 * RFC 2543 rules instead: Request-URI, From tag, Call-ID, CSeq number,
 * top Via and method, then the To tag (for an ACK, the To tag of the
 * response the transaction sent).
 *
 * Policies (documented choices):
 *  - 100 Trying: when the TU has sent no provisional response to an
 *    INVITE within cfg.trying_delay (200 ms by default, also when 0;
 *    UINT64_MAX disables it), the layer sends a 100 Trying itself
 *    (§17.2.1).  A TU may always send its own 100 earlier.
 *  - 2xx to INVITE follow RFC 3261, not RFC 6026: a server INVITE
 *    transaction terminates when the TU sends a 2xx (the TU core
 *    retransmits the 2xx until the ACK, §13.3.1.4), and a client INVITE
 *    transaction terminates on the first 2xx.  Later 2xx (retransmissions
 *    or other forks) match no transaction and reach the TU as a
 *    KZ_SIP_TXL_EV_RESPONSE with txn == NULL, as §18.1.2 says.  A 2xx
 *    from another fork arriving while the transaction is Completed
 *    (after a non-2xx final response, Timer D running) also reaches the
 *    TU with txn == NULL (RFC 6026 §8.4); the transaction does not ACK
 *    it and stays Completed.  Likewise the ACK for a 2xx reaches the TU
 *    as KZ_SIP_TXL_EV_REQUEST with txn == NULL.
 *  - A client INVITE transaction that got a provisional response waits
 *    in Proceeding without a timer (B guards Calling only): giving up
 *    (CANCEL, proxy Timer C) is the TU's decision.
 *  - Responses are sent back to the source address and transport the
 *    request came from (symmetric response routing, RFC 3581 style).
 *  - Reliable transports (anything but UDP and OTHER): timers A, E and G
 *    are not used; D, I, J and K are zero, so the transaction terminates
 *    at once where it would have started them.
 */

struct kz_sip_txl;
struct kz_sip_txn;

enum kz_sip_txn_state {
  KZ_SIP_TXN_CALLING = 0, /* client INVITE, request sent */
  KZ_SIP_TXN_TRYING,      /* client or server non-INVITE, no response yet */
  KZ_SIP_TXN_PROCEEDING,
  KZ_SIP_TXN_COMPLETED,
  KZ_SIP_TXN_CONFIRMED,   /* server INVITE, ACK received */
  KZ_SIP_TXN_TERMINATED
};

enum kz_sip_txl_ev_type {
  /* A request.  txn is the new server transaction, or NULL for an ACK
   * that matches no INVITE server transaction (the ACK for a 2xx, or a
   * stray one).  For a CANCEL, cancel_target is the INVITE server
   * transaction it matches (§9.2) or NULL: the TU decides what to answer
   * (200 to the CANCEL and 487 to the INVITE, or 481). */
  KZ_SIP_TXL_EV_REQUEST = 1,
  /* A response for a client transaction (txn), or with txn == NULL a
   * response matching none (a 2xx retransmission or another fork's 2xx
   * after the INVITE transaction ended or while it is Completed after a
   * non-2xx, RFC 6026 §8.4).  Retransmitted responses the
   * transaction absorbs are not reported. */
  KZ_SIP_TXL_EV_RESPONSE,
  /* Timer B or F fired (client: no final response), or timer H fired
   * (server INVITE: no ACK for the non-2xx final response). */
  KZ_SIP_TXL_EV_TIMEOUT,
  /* send() failed for this transaction; error holds its return value. */
  KZ_SIP_TXL_EV_TRANSPORT_ERROR,
  /* The transaction ended; the last event about it. */
  KZ_SIP_TXL_EV_TERMINATED
};

struct kz_sip_txl_event {
  enum kz_sip_txl_ev_type type;
  struct kz_sip_txn *txn;            /* borrowed; may be NULL, see above */
  const struct kz_sip_msg *msg;      /* REQUEST/RESPONSE: the message (borrowed) */
  const struct kz_addr *src;         /* REQUEST/RESPONSE: where it came from */
  enum kz_sip_transport transport;   /* REQUEST/RESPONSE: how it came */
  struct kz_sip_txn *cancel_target;  /* REQUEST for a CANCEL, else NULL */
  int error;                         /* TRANSPORT_ERROR: send()'s code */
};

struct kz_sip_txl_cbs {
  /* Sends bytes (valid only during the call) to dest over transport.
   * Returns 0 or a negative KZ_E* code. */
  int (*send)(void *arg, const uint8_t *bytes, size_t len, const struct kz_addr *dest,
              enum kz_sip_transport transport);
  /* Tells the TU something happened. */
  void (*event)(void *arg, const struct kz_sip_txl_event *ev);
};

#define KZ_SIP_MS 1000000ull /* nanoseconds per millisecond */

/* Timer values in nanoseconds; a zero field takes its RFC 3261 default. */
struct kz_sip_txl_config {
  uint64_t t1;           /* RTT estimate, 500 ms */
  uint64_t t2;           /* retransmission cap for non-INVITE, 4 s */
  uint64_t t4;           /* max time a message stays in the network, 5 s */
  uint64_t timer_d;      /* client INVITE wait for retransmissions, 32 s (unreliable) */
  uint64_t trying_delay; /* automatic 100 Trying, 200 ms (0 too); UINT64_MAX disables */
  uint64_t map_seed;     /* hash seed for the transaction map (from the env's PRNG) */
};

/* Creates a transaction layer.  cfg may be NULL (all defaults); cbs and
 * both its callbacks are required and copied.  *out is the caller's,
 * released with kz_sip_txl_free.  Returns 0, KZ_EINVAL or KZ_ENOMEM. */
int kz_sip_txl_new(struct kz_sip_txl **out, const struct kz_sip_txl_config *cfg,
                   const struct kz_sip_txl_cbs *cbs, void *arg);

/* Terminates every transaction (no events, no sends) and frees the
 * layer.  Transactions the TU still references stay allocated until it
 * drops them but are terminated.  NULL is a no-op. */
void kz_sip_txl_free(struct kz_sip_txl *txl);

/* Feeds a message received from `src` over `transport` at time `now`.
 * Requests create server transactions or are absorbed as
 * retransmissions (the last response is sent again); responses go to
 * their client transaction.  msg is borrowed for the call: a request
 * that creates a transaction is copied (msg may be a zero-copy parse of
 * a buffer the caller reuses afterwards).
 * Returns 0, KZ_EINVAL (NULL arguments, or msg has no Via) or KZ_ENOMEM
 * (the message was dropped; a retransmission will bring it again). */
int kz_sip_txl_recv(struct kz_sip_txl *txl, const struct kz_sip_msg *msg,
                    const struct kz_addr *src, enum kz_sip_transport transport, uint64_t now);

/* The earliest timer deadline of any transaction, UINT64_MAX when none. */
uint64_t kz_sip_txl_next_expiry(const struct kz_sip_txl *txl);

/* Fires every timer whose deadline is <= now (retransmissions, timeouts,
 * terminations), in deadline order, ties in the order of their last
 * (re)schedule. */
void kz_sip_txl_handle_expiry(struct kz_sip_txl *txl, uint64_t now);

/* Number of live (not terminated) transactions. */
size_t kz_sip_txl_count(const struct kz_sip_txl *txl);

/* Starts a client transaction for the request in bytes[0..len) (copied)
 * and sends it to dest over transport.  The request must carry a top Via
 * with a branch (kz_sip_build_request makes one) and must not be an ACK
 * (an ACK for a 2xx is sent by the TU directly; the ACK for a non-2xx is
 * made by the transaction).  *out (optional) receives a borrowed
 * pointer, valid until the TERMINATED event.  `user` is stored for the
 * TU (kz_sip_txn_user).  When the first send fails nothing is created
 * and send()'s code is returned.
 * Returns 0, KZ_EINVAL, KZ_EPROTO (bytes do not parse as a request),
 * KZ_EEXIST (a client transaction with this branch and method exists),
 * KZ_ENOMEM or the send error. */
int kz_sip_txl_request(struct kz_sip_txl *txl, const void *bytes, size_t len,
                       const struct kz_addr *dest, enum kz_sip_transport transport, void *user,
                       uint64_t now, struct kz_sip_txn **out);

/* The same with a parsed request: its bytes (msg->raw) are copied. */
int kz_sip_txl_request_msg(struct kz_sip_txl *txl, const struct kz_sip_msg *msg,
                           const struct kz_addr *dest, enum kz_sip_transport transport,
                           void *user, uint64_t now, struct kz_sip_txn **out);

/* Starts a CANCEL client transaction for the INVITE client transaction
 * `invite` (built with kz_sip_build_cancel, sent to the same destination
 * over the same transport).  §9.1: the TU should wait for a provisional
 * response first; this call refuses an INVITE transaction that is not in
 * the Proceeding state.  Returns 0, KZ_EINVAL, KZ_EEXIST, KZ_ENOMEM or
 * the send error; *out as for kz_sip_txl_request. */
int kz_sip_txl_cancel(struct kz_sip_txl *txl, struct kz_sip_txn *invite, void *user,
                      uint64_t now, struct kz_sip_txn **out);

/* Sends the response in bytes[0..len) through the server transaction
 * txn, which keeps a copy for retransmissions.  1xx keeps the
 * transaction proceeding; 2xx ends an INVITE transaction; a final
 * response completes it (timers G/H or J start).  A send failure is
 * reported as a TRANSPORT_ERROR event and terminates the transaction;
 * the call still returns 0.
 * Returns 0, KZ_EINVAL (not a server transaction, already completed or
 * terminated, or a response to another transaction), KZ_EPROTO (bytes
 * are not a response) or KZ_ENOMEM (nothing was sent). */
int kz_sip_txn_respond(struct kz_sip_txn *txn, const void *bytes, size_t len, uint64_t now);

/* Accessors.  The request is the one that created the transaction
 * (borrowed, lives as long as the transaction). */
enum kz_sip_txn_state kz_sip_txn_state(const struct kz_sip_txn *txn);
const struct kz_sip_msg *kz_sip_txn_request(const struct kz_sip_txn *txn);
bool kz_sip_txn_is_server(const struct kz_sip_txn *txn);
bool kz_sip_txn_is_invite(const struct kz_sip_txn *txn);
void *kz_sip_txn_user(const struct kz_sip_txn *txn);
void kz_sip_txn_set_user(struct kz_sip_txn *txn, void *user);
/* Status of the last response sent (server) or received (client), 0 if none. */
uint16_t kz_sip_txn_last_status(const struct kz_sip_txn *txn);
const char *kz_sip_txn_state_name(enum kz_sip_txn_state s);

#endif /* KZ_SIP_TXN_H */
