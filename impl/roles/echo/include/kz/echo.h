/* kz/echo.h — the example node: a UDP+stream echo server and a pinger client, written only against kz_env. */
#ifndef KZ_ECHO_H
#define KZ_ECHO_H

#include <stdbool.h>
#include <stdint.h>

#include "kz/env.h"

/* The echo node proves the sans-I/O design end to end: the same code runs
 * on the libuv driver (real sockets, real files) and in the simulator.
 * It uses every part of kz_env: timers, the PRNG, datagrams, streams,
 * durable files and logging.
 *
 * Wire format (both transports): one message is the ASCII line
 *   "ping <seq> <tag>\n"
 * where <seq> is the decimal message number (0, 1, ...) and <tag> is 8 to
 * 32 lowercase hex characters drawn from the client's PRNG sub-stream, so
 * traffic differs with the seed.  A UDP datagram carries exactly one line;
 * on a stream the lines follow each other.  The server echoes bytes back
 * verbatim and does not look at them. */

struct kz_echo_server;
struct kz_echo_client;

/* Called once when the client has seen every expected echo (see
 * kz_echo_client_done).  Tests use it to stop their loop. */
typedef void kz_echo_done_fn(void *arg, struct kz_echo_client *c);

/* ------------------------------------------------------------------ */
/* Server                                                              */

struct kz_echo_server_cfg {
  /* Where to bind the datagram socket; family 0 = no UDP.  Port 0 picks
   * one: read it back with kz_echo_server_udp_addr. */
  struct kz_addr udp;
  /* Where to listen for streams; family 0 = no listener. */
  struct kz_addr tcp;
  /* Period of the tick timer; 0 means 100 ms. */
  uint64_t tick_ns;
  /* Persist the tick counter every this many ticks; 0 means never.  The
   * counter is written to "<state_path>.tmp", synced, then renamed over
   * state_path, so a crash leaves either the old or the new value. */
  uint32_t persist_every;
  /* Relative kz_fs path of the counter file; NULL means "echo/ticks". */
  const char *state_path;
};

struct kz_echo_server_stats {
  uint64_t datagrams_echoed; /* UDP datagrams sent back */
  uint64_t udp_bytes_echoed;
  uint64_t bytes_echoed;     /* stream bytes written back */
  uint64_t streams_accepted;
  uint64_t streams_open;     /* accepted and not yet ended */
  uint64_t ticks;            /* tick timer expiries since start */
  uint64_t persists;         /* successful counter writes (synced + renamed) */
  uint64_t persist_errors;   /* failed counter writes */
  uint64_t restored_ticks;   /* counter read from state_path at start (0 if none) */
  uint64_t send_errors;      /* kz_udp_send / kz_stream_write failures */
};

/* Creates a server on `env`: binds, listens and starts the tick timer as
 * configured.  It reads any counter left in state_path by an earlier
 * instance into stats.restored_ticks.  *out is the caller's; release it
 * with kz_echo_server_free.  Returns 0, KZ_EINVAL (no env/cfg, or bad
 * state_path), KZ_ENOMEM, or the error of kz_udp_bind / kz_stream_listen
 * (KZ_EADDRINUSE, KZ_EADDRNOTAVAIL, KZ_EIO). */
int kz_echo_server_new(struct kz_echo_server **out, struct kz_env *env,
                       const struct kz_echo_server_cfg *cfg);
/* Stops the timer and closes the socket, the listener and every accepted
 * stream (their pending echoes are flushed by the env).  NULL is a no-op. */
void kz_echo_server_free(struct kz_echo_server *s);
/* Counters; the pointer stays valid while the server lives. */
const struct kz_echo_server_stats *
kz_echo_server_stats(const struct kz_echo_server *s);
/* The bound addresses (with the chosen ports); family 0 when disabled. */
struct kz_addr kz_echo_server_udp_addr(const struct kz_echo_server *s);
struct kz_addr kz_echo_server_tcp_addr(const struct kz_echo_server *s);

/* ------------------------------------------------------------------ */
/* Client ("pinger")                                                   */

struct kz_echo_client_cfg {
  /* Server addresses; family 0 = do not use that transport. */
  struct kz_addr server_udp;
  struct kz_addr server_tcp;
  /* Local address for the client's datagram socket; family 0 means the
   * unspecified address of the server's family, port 0. */
  struct kz_addr local_udp;
  /* Time between two sends; 0 means 100 ms.  The first send happens
   * one interval after creation. */
  uint64_t interval_ns;
  /* Number of messages to send on each configured transport. */
  uint32_t count;
  /* Optional: called once when kz_echo_client_done becomes true. */
  kz_echo_done_fn *on_done;
  void *done_arg;
};

struct kz_echo_client_stats {
  uint32_t udp_sent;      /* datagrams sent */
  uint32_t udp_replies;   /* distinct correct echoes received */
  uint32_t udp_dups;      /* correct echoes of a message already seen */
  uint32_t udp_bad;       /* datagrams that are not an echo we sent */
  uint32_t tcp_sent;      /* lines written */
  uint32_t tcp_replies;   /* lines echoed back correctly, in order */
  uint32_t tcp_bad;       /* lines that did not match (stream then closed) */
  uint64_t tcp_bytes_received;
  bool tcp_connected;     /* on_connect was seen */
  bool tcp_ended;         /* the stream ended by itself */
  int tcp_status;         /* on_close status when tcp_ended */
  uint32_t send_errors;   /* kz_udp_send / kz_stream_write failures */
};

/* Creates a client on `env`: binds its datagram socket, starts
 * connecting the stream and starts its send timer.  Each message's tag
 * comes from the env PRNG sub-stream "echo-client".  *out is the
 * caller's; release it with kz_echo_client_free.  Returns 0, KZ_EINVAL
 * (no env/cfg, or neither server address set), KZ_ENOMEM, or the error of
 * kz_udp_bind / kz_stream_connect. */
int kz_echo_client_new(struct kz_echo_client **out, struct kz_env *env,
                       const struct kz_echo_client_cfg *cfg);
/* Stops the timer and closes the socket and stream.  NULL is a no-op. */
void kz_echo_client_free(struct kz_echo_client *c);
/* True once all `count` messages were sent and echoed back correctly on
 * every configured transport. */
bool kz_echo_client_done(const struct kz_echo_client *c);
/* Counters; the pointer stays valid while the client lives. */
const struct kz_echo_client_stats *
kz_echo_client_stats(const struct kz_echo_client *c);

#endif /* KZ_ECHO_H */
