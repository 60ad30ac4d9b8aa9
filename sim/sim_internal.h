/* sim_internal.h — the simulator's private structures, shared by sim.c, trace.c, net.c, storage.c, cpu.c, pcap.c and driver.c. */
#ifndef KZ_SIM_INTERNAL_H
#define KZ_SIM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kz/buf.h"
#include "kz/env.h"
#include "kz/heap.h"
#include "kz/map.h"
#include "kz/prng.h"
#include "kz/sim.h"

/* ------------------------------------------------------------------ */
/* Events.  Every event embeds a sim_event; `fire` runs it and then owns
 * it (frees it when it was allocated), `discard` frees one that never
 * fired (teardown). */

struct sim_event;
typedef void sim_event_fn(struct kz_sim *sim, struct sim_event *ev);

struct sim_event {
  struct kz_heap_node node;
  sim_event_fn *fire;
  sim_event_fn *discard;
};

/* Queues `ev` at max(t, now).  On failure marks the simulator failed
 * and returns KZ_ENOMEM (the caller still owns ev). */
int kz_sim_schedule(struct kz_sim *sim, struct sim_event *ev, uint64_t t);
void kz_sim_unschedule(struct kz_sim *sim, struct sim_event *ev);
/* Records a failure that cannot be returned to the caller. */
void kz_sim_fail(struct kz_sim *sim, int err);

/* ------------------------------------------------------------------ */
/* Links */

/* One directed path (from -> to): its configuration when set
 * explicitly, and the state every path carrying traffic has (its own
 * PRNG sub-stream, the partition flag, what is in flight).  Created on
 * first use, freed with the simulator. */
struct sim_path {
  struct kz_sim_host *from, *to;
  bool custom;                 /* cfg set by kz_sim_link_set(_latency) */
  struct kz_sim_link_cfg cfg;  /* valid when custom */
  bool blocked;                /* partitioned */
  struct kz_prng prng;         /* "net:<from>-><to>" */
  uint32_t inflight_pkts;      /* datagrams on the wire */
  uint64_t inflight_bytes;
};

/* The path from -> to, created when missing (NULL on KZ_ENOMEM, the
 * simulator is then marked failed). */
struct sim_path *kz_sim_path(struct kz_sim *sim, struct kz_sim_host *from,
                             struct kz_sim_host *to);
/* The configuration in force on a path. */
const struct kz_sim_link_cfg *kz_sim_path_cfg(const struct kz_sim *sim,
                                              const struct sim_path *path);

/* ------------------------------------------------------------------ */
/* Hosts and processes */

struct kz_sim_proc {
  struct kz_sim_host *host;
  char name[32];
  const struct kz_sim_app *app;
  const void *cfg;
  void *instance;
  bool running;         /* started and not crashed */
  uint64_t stall_until; /* events wait until then (kz_sim_proc_stall) */
  bool timer_admitted;  /* timer_ev charged to a core (kz_sim_cpu_gate) */
  bool timer_waiting;   /* timer_ev rescheduled to its CPU start time */
  bool env_live;        /* env initialised */
  uint64_t boot;        /* incremented at every start */
  struct kz_env env;
  struct sim_event timer_ev; /* the one "timers due" event of this env */
  struct sim_fh *files;      /* open file handles (list) */
};

struct kz_sim_host {
  struct kz_sim *sim;
  uint32_t id; /* index in sim->hosts, stable */
  char name[32];
  struct kz_addr addr;
  bool up;
  bool crashing; /* inside kz_sim_host_crash: nothing leaves */
  int64_t clock_skew_ns; /* includes the drift accumulated before drift_base */
  int32_t drift_ppm;
  uint64_t drift_base;   /* virtual time the current drift rate applies from */
  enum kz_sim_crash_mode crash_mode;
  struct kz_prng prng; /* "host:<name>": torn writes */
  unsigned cores;
  uint64_t core_free[64]; /* when each core is next free */
  struct kz_sim_cpu_stats cpu;
  struct kz_sim_proc **procs;
  size_t n_procs;
  struct kz_map udp_ports;    /* port (2 bytes BE) -> struct sim_bind */
  struct kz_map tcp_ports;    /* port (2 bytes BE) -> struct sim_bind */
  uint16_t next_ephemeral;
  struct kz_map files;        /* full path -> struct sim_file (ref) */
  struct sim_path *last_path; /* net.c: path of the latest datagram sent */
};

/* A bound UDP socket or listener. */
struct sim_bind {
  struct kz_sim_proc *proc;
  struct kz_udp *udp;           /* one of the two is set */
  struct kz_listener *listener;
  uint16_t port;
};

/* ------------------------------------------------------------------ */
/* Streams */

enum sim_end_state {
  END_NONE = 0,   /* not created yet (server side before accept) */
  END_CONNECTING,
  END_OPEN,
  END_DONE,       /* refused / timed out / reset received */
  END_DEAD,       /* its process crashed */
};

struct sim_conn;
struct seg_ev; /* net.c */

struct sim_end {
  struct sim_conn *conn;
  int side; /* 0 connecting, 1 accepting */
  enum sim_end_state state;
  struct kz_sim_host *host;
  struct kz_sim_proc *proc;
  struct kz_addr addr;
  struct kz_stream *s;   /* user handle with our reference, NULL when released */
  bool fin_sent;         /* our direction is finished */
  bool close_seen;       /* FIN or RST received */
  bool close_delivered;  /* on_close already given to the user */
  struct kz_buf pending; /* written while connecting */
  uint64_t last_arrival; /* arrival of our latest segment at the peer (FIFO) */
  /* Segments waiting for a blocked path (in order), retried by rtx_ev
   * every stall_rto; they hold no reference on the connection. */
  struct seg_ev *stall_head, *stall_tail;
  uint64_t stall_since;
  uint64_t stall_rto;
  struct sim_event rtx_ev; /* holds a connection reference while queued */
  bool timed_out;          /* gave up (stream timeout): answers with RST */
  bool pending_accept;     /* accepted by the kernel, accept callback not run yet */
  /* TCP numbers for the pcap: our next sequence number, and the next we
   * expect from the peer. */
  uint32_t snd_nxt, rcv_nxt;
};

struct sim_conn {
  struct kz_sim *sim;
  uint64_t id;
  struct sim_end end[2];
  uint64_t syn_time;
  struct sim_conn *prev, *next; /* sim->conns, while not finished */
  bool listed;
};

/* ------------------------------------------------------------------ */
/* Storage */

struct sim_file {
  struct kz_buf cur;
  struct kz_buf synced;
  bool durable; /* has been synced: exists after a crash */
  /* Writes and truncates since the last sync, in order, for torn crashes:
   * records of [type 'W' or 'T'][u64 offset or size][u64 len][bytes]. */
  struct kz_buf wlog;
};

struct sim_fh {
  struct sim_file *file; /* reference */
  struct kz_file *f;     /* user handle, with our reference */
  struct kz_sim_proc *proc;
  int flags;             /* KZ_FILE_* given to open */
  char path[256];        /* full path, for traces */
  struct sim_fh *prev, *next;
};

/* ------------------------------------------------------------------ */
/* The simulator */

struct kz_sim {
  uint64_t seed;
  uint64_t now;
  int failed; /* sticky KZ_E* code, 0 when healthy */
  struct kz_heap queue;
  struct kz_prng net_prng; /* "net": nothing draws from it (paths have their own) */

  struct kz_sim_host **hosts;
  size_t n_hosts;
  struct kz_map hosts_by_ip; /* 4 bytes -> host */

  struct kz_map links; /* (from id, to id) 8 bytes -> struct sim_path */
  struct kz_sim_link_cfg default_link;
  uint64_t connect_timeout_ns;
  uint64_t stream_timeout_ns;

  /* CPU cost table: the default row and rows by app name. */
  struct kz_sim_cost default_cost;
  struct sim_cost_row *cost_rows;
  size_t n_cost_rows;

  /* pcap output */
  FILE *pcap_file;
  uint16_t ip_id; /* IPv4 identification counter */

  struct sim_conn *conns_head, *conns_tail;
  uint64_t next_conn_id;

  int log_level;
  struct kz_sim_stats stats;

  /* Spent datagram events kept for reuse (net.c): one malloc/free pair
   * less per simulated datagram.  Freed by kz_sim_net_free. */
  void *dgram_pool;
  size_t dgram_pool_n;

  /* trace */
  uint64_t trace_hash;
  FILE *trace_file;
  bool trace_keep;
  struct kz_buf trace_mem;
  struct kz_buf bin;  /* the line being built, canonical form (hashed) */
  struct kz_buf line; /* the line being built, JSON text (when tr_text) */
  bool line_ok;       /* no allocation failure while building it */
  bool tr_text;       /* a sink was attached when the line began */
  bool tr_skip;       /* the line began during teardown: dropped */
  /* The last addresses formatted for the trace and their text: a run
   * traces the same few endpoints over and over (trace.c). */
  struct {
    struct kz_addr a;
    uint8_t len;
    char text[KZ_ADDR_STRLEN];
  } tr_addr[4];
  unsigned tr_addr_next; /* round-robin victim */
  bool trace_off;     /* teardown: lines are dropped */
};

struct sim_cost_row {
  char kind[32];
  struct kz_sim_cost cost;
};

/* ------------------------------------------------------------------ */
/* Trace line builder (trace.c).  A line is
 *   {"t":<ns>,"ev":"<name>",<fields...>}\n
 * with fields in the order the caller adds them; its binary canonical
 * form (same fields, same order) is what the trace hash chains, and the
 * JSON text is only built while a trace file or trace memory is on. */

void kz_sim_tr_begin(struct kz_sim *sim, const char *ev);
void kz_sim_tr_str(struct kz_sim *sim, const char *key, const char *val);
void kz_sim_tr_strn(struct kz_sim *sim, const char *key, const char *val, size_t len);
void kz_sim_tr_u64(struct kz_sim *sim, const char *key, uint64_t v);
void kz_sim_tr_i64(struct kz_sim *sim, const char *key, int64_t v);
void kz_sim_tr_hex64(struct kz_sim *sim, const char *key, uint64_t v);
void kz_sim_tr_addr(struct kz_sim *sim, const char *key, const struct kz_addr *a);
/* "host" and "proc" fields (proc may be NULL). */
void kz_sim_tr_who(struct kz_sim *sim, const struct kz_sim_host *h,
            const struct kz_sim_proc *p);
/* Adds "len" and "h" (content hash) for a payload. */
void kz_sim_tr_payload(struct kz_sim *sim, const void *data, size_t len);
/* The same fields for a payload whose content hash, kz_hash64(data, len,
 * 0), is already known (a datagram is hashed once, when it is sent). */
void kz_sim_tr_payload_hashed(struct kz_sim *sim, size_t len, uint64_t hash);
/* The begin line and the fields of a datagram event (who, src, dst, len,
 * h) in one call: the same bytes as the field-by-field builders, fewer
 * steps (every datagram has three or four such lines). */
void kz_sim_tr_dgram(struct kz_sim *sim, const char *ev, const struct kz_sim_host *h,
                     const struct kz_sim_proc *p, const struct kz_addr *src,
                     const struct kz_addr *dst, size_t len, uint64_t hash);
void kz_sim_tr_err(struct kz_sim *sim, const char *key, int err);
void kz_sim_tr_end(struct kz_sim *sim);
void kz_sim_trace_free(struct kz_sim *sim);

/* ------------------------------------------------------------------ */
/* Hosts and links (sim.c) */

struct kz_sim_host *kz_sim_host_by_ip(const struct kz_sim *sim,
                                   const struct kz_addr *a);
uint64_t kz_sim_latency(const struct kz_sim *sim, const struct kz_sim_host *from,
                     const struct kz_sim_host *to);
/* What kz_env_wall adds to KZ_SIM_EPOCH_NS + now on host h: skew and drift. */
int64_t kz_sim_host_wall_offset(const struct kz_sim_host *h);

/* ------------------------------------------------------------------ */
/* Network (net.c) */

int kz_sim_net_udp_bind(struct kz_sim_proc *p, struct kz_udp *u,
                 const struct kz_addr *local);
int kz_sim_net_udp_send(struct kz_sim_proc *p, struct kz_udp *u,
                 const struct kz_addr *to, const void *data, size_t len);
void kz_sim_net_udp_close(struct kz_sim_proc *p, struct kz_udp *u);
int kz_sim_net_listen(struct kz_sim_proc *p, struct kz_listener *l,
               const struct kz_addr *local);
void kz_sim_net_listen_close(struct kz_sim_proc *p, struct kz_listener *l);
int kz_sim_net_connect(struct kz_sim_proc *p, struct kz_stream *s,
                const struct kz_addr *remote);
int kz_sim_net_stream_write(struct kz_sim_proc *p, struct kz_stream *s,
                     const void *data, size_t len);
void kz_sim_net_stream_close(struct kz_sim_proc *p, struct kz_stream *s);
/* Closes every handle process p still holds (it died). Returns the count. */
size_t kz_sim_net_reclaim(struct kz_sim_proc *p);
/* After the processes of h died: resets the peers of h's streams. */
void kz_sim_net_host_crashed(struct kz_sim_host *h);
/* After process p was killed: resets the peers of its streams. */
void kz_sim_net_proc_killed(struct kz_sim_proc *p);
/* Teardown: drops every connection without events. */
void kz_sim_net_free(struct kz_sim *sim);
void kz_sim_net_host_init(struct kz_sim_host *h);
void kz_sim_net_host_free(struct kz_sim_host *h);

/* ------------------------------------------------------------------ */
/* Storage (storage.c) */

int kz_sim_fs_open(struct kz_sim_proc *p, struct kz_file *f, const char *path,
            int flags);
int kz_sim_fs_read(struct kz_sim_proc *p, struct kz_file *f, uint64_t off,
            void *buf, size_t len, size_t *nread);
int kz_sim_fs_write(struct kz_sim_proc *p, struct kz_file *f, uint64_t off,
             const void *buf, size_t len);
int kz_sim_fs_size(struct kz_sim_proc *p, struct kz_file *f, uint64_t *size);
int kz_sim_fs_truncate(struct kz_sim_proc *p, struct kz_file *f, uint64_t size);
int kz_sim_fs_sync(struct kz_sim_proc *p, struct kz_file *f);
void kz_sim_fs_close(struct kz_sim_proc *p, struct kz_file *f);
int kz_sim_fs_rename(struct kz_sim_proc *p, const char *from, const char *to);
int kz_sim_fs_remove(struct kz_sim_proc *p, const char *path);
int kz_sim_fs_exists(struct kz_sim_proc *p, const char *path, bool *exists);
size_t kz_sim_fs_reclaim(struct kz_sim_proc *p);
/* Crash: every file back to its synced image; unsynced files vanish.
 * Returns the number of files that vanished. */
size_t kz_sim_fs_host_crashed(struct kz_sim_host *h, size_t *reverted);
void kz_sim_fs_host_free(struct kz_sim_host *h);

/* ------------------------------------------------------------------ */
/* CPU model (cpu.c) */

/* Gate in front of every event handed to process p (NULL: kernel work,
 * always runs now).  `*admitted` is the event's own flag, false when it
 * is first seen.  Returns true when the event runs now; otherwise the
 * caller reschedules the event at *at and returns (the gate is asked
 * again then). */
bool kz_sim_cpu_gate(struct kz_sim_proc *p, bool *admitted, enum kz_sim_work kind,
                     size_t len, uint64_t *at);
void kz_sim_cpu_free(struct kz_sim *sim);

/* ------------------------------------------------------------------ */
/* pcap (pcap.c) */

/* A datagram arriving at its destination now. */
void kz_sim_pcap_udp(struct kz_sim *sim, const struct kz_addr *src, const struct kz_addr *dst,
                     const uint8_t *data, size_t len);
enum { KZ_SIM_TCP_FIN = 0x01, KZ_SIM_TCP_SYN = 0x02, KZ_SIM_TCP_RST = 0x04,
       KZ_SIM_TCP_PSH = 0x08, KZ_SIM_TCP_ACK = 0x10 };
/* A TCP segment arriving now; data longer than one MSS is split. */
void kz_sim_pcap_tcp(struct kz_sim *sim, const struct kz_addr *src, const struct kz_addr *dst,
                     uint32_t seq, uint32_t ack, uint8_t flags, const uint8_t *data, size_t len);

/* ------------------------------------------------------------------ */
/* Driver (driver.c) */

extern const struct kz_env_ops kz_sim_env_ops;
/* (Re)arms p's timer event for `deadline` (UINT64_MAX: disarm). */
void kz_sim_proc_arm(struct kz_sim_proc *p, uint64_t deadline);
void kz_sim_proc_timer_fire(struct kz_sim *sim, struct sim_event *ev);

#endif /* KZ_SIM_INTERNAL_H */
