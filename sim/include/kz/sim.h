/* kz/sim.h — the deterministic discrete-event simulator: virtual time, hosts, processes, links, storage, trace. */
#ifndef KZ_SIM_H
#define KZ_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kz/env.h"

/* The simulator runs any number of role instances ("processes") on
 * simulated hosts inside one OS process.  Each process gets its own
 * struct kz_env whose driver is the simulator, so the very same role code
 * that runs under the libuv driver runs here, in virtual time.
 *
 * Time: virtual nanoseconds starting at 0.  There is ONE event queue,
 * ordered by (time, insertion sequence); running pops the earliest event
 * and jumps the clock to its time, so idle periods cost nothing and equal
 * times fire in the order they were scheduled.
 *
 * Randomness: one root seed.  Every component draws from its own
 * sub-stream derived by name (kz_prng_derive: "net", "host:<name>", and
 * per process boot an env seed), so one component's draws never shift
 * another's.
 *
 * Output: every event is written as one JSON line to the trace (memory
 * and/or a FILE*, when attached) and folded into a 64-bit running hash
 * (kz_hash64 chained over each line's binary canonical form, the same
 * whether or not the text is kept).  Lines use integers and strings only,
 * no pointers, so the same seed gives byte-identical traces on every run
 * of the same binary.
 *
 * Threading: none.  Everything runs on the caller's thread, inside the
 * kz_sim_step / kz_sim_run_* calls. */

struct kz_sim;
struct kz_sim_host;
struct kz_sim_proc;

/* Wall clock of every simulated host at virtual time 0:
 * 2026-01-01T00:00:00Z in ns since the Unix epoch.  A host's wall clock
 * is this base + virtual time + the host's skew. */
#define KZ_SIM_EPOCH_NS INT64_C(1767225600000000000)
/* One-way latency of a directed path nobody configured. */
#define KZ_SIM_DEFAULT_LATENCY_NS UINT64_C(1000000)
/* How long a connect waits when its SYN goes unanswered (no host at the
 * address, or the host is down) before on_close(KZ_ETIMEDOUT). */
#define KZ_SIM_DEFAULT_CONNECT_TIMEOUT_NS UINT64_C(3000000000)
/* Largest UDP payload (IPv4). */
#define KZ_SIM_UDP_MAX 65507

/* An application (a role) the simulator can run in a process.  The
 * simulator calls start when the process boots (kz_sim_proc_add on an up
 * host, and on every kz_sim_host_restart) and stop when it dies (host
 * crash, kz_sim_free). */
struct kz_sim_app {
  const char *name;
  /* Creates an instance on `env` with `cfg` (borrowed; it must outlive
   * the process).  Returns 0 and sets *instance, or a KZ_E* code (the
   * process then stays down until the next restart). */
  int (*start)(struct kz_env *env, const void *cfg, void **instance);
  /* Frees the instance: it must close every handle it holds and release
   * its memory, and must not expect any callback.  On a crash nothing it
   * does reaches the network (no FIN, no datagram): the process state just
   * vanishes.  Handles it forgets are reclaimed by the simulator (counted
   * in the "stop" trace line as "reclaimed"; non-zero means a leak). */
  void (*stop)(void *instance);
};

/* Counters, all monotonic over the simulator's life. */
struct kz_sim_stats {
  uint64_t events;          /* events popped from the queue */
  uint64_t trace_lines;
  uint64_t udp_sent;
  uint64_t udp_delivered;
  uint64_t udp_dropped;
  uint64_t streams_opened;  /* connects that reached an accept */
  uint64_t streams_refused;
  uint64_t stream_bytes;    /* payload bytes delivered on streams */
  uint64_t crashes;
  uint64_t restarts;
  /* Network faults (added with the network model). */
  uint64_t udp_lost;        /* datagrams dropped by link loss */
  uint64_t udp_duplicated;  /* extra copies made by link duplication */
  uint64_t udp_reordered;   /* datagrams given the reordering delay */
  uint64_t udp_queue_full;  /* datagrams dropped by a full path queue */
  uint64_t udp_partitioned; /* datagrams dropped by a partition */
  uint64_t stream_retransmits; /* segment losses turned into RTO delays */
  uint64_t streams_timed_out;  /* streams reset by the stream timeout */
  uint64_t stalls;             /* kz_sim_proc_stall calls */
};

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */

/* Creates an empty simulator at virtual time 0 with root seed `seed`.
 * *out is the caller's until kz_sim_free.  Returns 0 or KZ_ENOMEM. */
int kz_sim_new(struct kz_sim **out, uint64_t seed);
/* Stops every running process (as a crash would, without tracing),
 * discards pending events and frees everything.  The trace FILE* is not
 * closed.  NULL is a no-op. */
void kz_sim_free(struct kz_sim *sim);
uint64_t kz_sim_seed(const struct kz_sim *sim);

/* ------------------------------------------------------------------ */
/* Hosts and processes                                                 */

/* Adds a host named `name` (1..31 printable chars, no "/", unique) owning the IPv4 address
 * `addr` (the port is ignored).  The host starts up, with no process and
 * empty storage.  *out (optional) is owned by the simulator.  Returns 0,
 * KZ_EINVAL (bad name, not IPv4, 0.0.0.0), KZ_EEXIST (name or address
 * taken) or KZ_ENOMEM. */
int kz_sim_host_add(struct kz_sim *sim, const char *name,
                    const struct kz_addr *addr, struct kz_sim_host **out);
/* The host named `name`, or NULL. */
struct kz_sim_host *kz_sim_host_find(const struct kz_sim *sim,
                                     const char *name);
const char *kz_sim_host_name(const struct kz_sim_host *h);
struct kz_addr kz_sim_host_addr(const struct kz_sim_host *h);
bool kz_sim_host_is_up(const struct kz_sim_host *h);
/* Offset added to this host's wall clock (kz_env_wall); 0 by default.
 * The monotonic clock (kz_env_now) is always the virtual time. */
void kz_sim_host_set_clock_skew(struct kz_sim_host *h, int64_t skew_ns);
/* Makes this host's wall clock run fast (ppm > 0) or slow (ppm < 0) by
 * `ppm` parts per million of virtual time from now on; what it drifted so
 * far is kept (the wall clock never jumps when the rate changes).  |ppm|
 * is clamped to 1,000,000.  Integer arithmetic only. */
void kz_sim_host_set_clock_drift(struct kz_sim_host *h, int32_t ppm);

/* Storage crash modes of a host (kz_sim_host_set_crash_mode). */
enum kz_sim_crash_mode {
  /* Every file reverts to its synced image; never-synced files vanish. */
  KZ_SIM_CRASH_REVERT = 0,
  /* Each file with unsynced changes independently (one draw from the
   * host's stream "host:<name>") either reverts as above, or keeps its
   * synced image plus a torn prefix of its unsynced writes, replayed in
   * write order: the first k of their bytes, k uniform in [0, total], the
   * last write applied partially.  A never-synced file may so survive with
   * part of its content, or vanish. */
  KZ_SIM_CRASH_TORN = 1,
};
/* Sets what unsynced writes become when `h` crashes.  Default
 * KZ_SIM_CRASH_REVERT.  Returns 0 or KZ_EINVAL (unknown mode). */
int kz_sim_host_set_crash_mode(struct kz_sim_host *h, enum kz_sim_crash_mode mode);

/* Installs `app` with `cfg` (borrowed, must outlive the simulator) as a
 * process named `name` (1..31 chars of [A-Za-z0-9._-], unique on the
 * host; it also names the process's storage root) on host `h`.  If the
 * host is up the process starts now.  *out (optional) is owned by the
 * simulator.  Returns 0, KZ_EINVAL, KZ_EEXIST, KZ_ENOMEM, or the app's
 * start error (the process is then not installed). */
int kz_sim_proc_add(struct kz_sim_host *h, const char *name,
                    const struct kz_sim_app *app, const void *cfg,
                    struct kz_sim_proc **out);
/* The app instance of a running process, NULL when it is down. */
void *kz_sim_proc_instance(const struct kz_sim_proc *p);
bool kz_sim_proc_is_running(const struct kz_sim_proc *p);
/* The process's env; valid only while it runs. */
struct kz_env *kz_sim_proc_env(struct kz_sim_proc *p);

/* Crashes host `h` now: every process on it stops (app stop, forgotten
 * handles reclaimed, timers dropped) without sending anything, peers of
 * its streams receive a reset (KZ_ECONNRESET) one link latency later,
 * datagrams and segments arriving while it is down are dropped, and its
 * storage reverts to what was synced (see kz_sim_file_get).  Must not be
 * called from inside a callback of a process on `h`; kz_sim_at callbacks
 * are fine.  Returns 0 or KZ_EHOSTDOWN (already down). */
int kz_sim_host_crash(struct kz_sim_host *h);
/* Brings a crashed host back up with its synced storage and starts its
 * processes again (each boot gets a fresh env seed).  Returns 0,
 * KZ_EBUSY (the host is up) or the first start error (other processes
 * still start). */
int kz_sim_host_restart(struct kz_sim_host *h);

/* Kills process `p` now, as kill -9 does on a real host: the app stops
 * without sending anything, its timers are dropped, its ports close (a
 * datagram to them is dropped, a connect is refused), the peers of its
 * streams receive a reset (KZ_ECONNRESET) one link latency later.  Its
 * host and the host's other processes keep running, and its storage keeps
 * every write, synced or not (the kernel's page cache survives a process).
 * Same calling rule as kz_sim_host_crash.  Traced as a "kill" line.
 * Returns 0 or KZ_EINVAL (the process is not running). */
int kz_sim_proc_kill(struct kz_sim_proc *p);
/* Starts a killed process again on its (up) host, with a fresh env seed.
 * Returns 0, KZ_EBUSY (it runs), KZ_EHOSTDOWN (its host is down) or the
 * app's start error. */
int kz_sim_proc_restart(struct kz_sim_proc *p);
/* Scheduled fault: kz_sim_proc_kill(p) at `at_ns`, and
 * kz_sim_proc_restart(p) at `restart_ns` unless UINT64_MAX.  A kill that
 * finds the process down, or a restart that finds it running or its host
 * down, does nothing (traced as "fault_skipped").  Returns 0, KZ_EINVAL
 * (restart_ns not after at_ns) or KZ_ENOMEM. */
int kz_sim_proc_kill_at(struct kz_sim_proc *p, uint64_t at_ns, uint64_t restart_ns);

/* ------------------------------------------------------------------ */
/* Links: one per directed path (from -> to).  A path that was never
 * configured uses the default link configuration; every path that
 * carries traffic has its own PRNG sub-stream "net:<from>-><to>" (host
 * names), so one path's draws never shift another's.
 *
 * Datagrams, per packet, in this order and always with the same draws
 * (so changing one probability does not move the others' outcomes):
 *   1. partition: a blocked path drops it ("partition");
 *   2. loss: dropped with probability loss_ppm ("loss");
 *   3. queue: dropped when the path already carries queue_packets
 *      datagrams or queue_bytes payload bytes in flight ("queue_full");
 *   4. delay: latency_ns + uniform [0, jitter_ns];
 *   5. reordering: with probability reorder_ppm, reorder_ns more (so
 *      later packets overtake it);
 *   6. duplication: with probability dup_ppm a second copy follows with
 *      its own delay draw.
 * A partition applies to packets sent while it holds; packets already on
 * the wire still arrive.
 *
 * Streams stay reliable and ordered: they never lose, duplicate or
 * reorder data.  A lost segment (loss_ppm) costs a retransmission
 * timeout instead: it arrives rto later per loss (the timeout doubles per
 * consecutive loss of the same segment, from KZ_SIM_STREAM_RTO_NS up to
 * KZ_SIM_STREAM_RTO_MAX_NS), and later segments of that direction wait
 * behind it.  A segment sent into a partition (or a 100% loss path) waits
 * and is retried every rto (with the same backoff); when the path opens
 * it leaves, and if it has waited more than the stream timeout
 * (kz_sim_set_stream_timeout) the sending end gives up: its user gets
 * on_close(KZ_ETIMEDOUT), it sends a RST (lost too while the partition
 * holds) and later segments of the peer reaching it are answered with a
 * RST (KZ_ECONNRESET).  Stream segments do not count against the queue
 * limits. */

/* Configuration of one directed path.  Integers only. */
struct kz_sim_link_cfg {
  uint64_t latency_ns;   /* minimum one-way delay */
  uint64_t jitter_ns;    /* extra delay, uniform in [0, jitter_ns] */
  uint32_t loss_ppm;     /* 0..1,000,000 */
  uint32_t dup_ppm;      /* datagrams only */
  uint32_t reorder_ppm;  /* datagrams only */
  uint64_t reorder_ns;   /* extra delay of a reordered datagram; 0: latency + jitter + 1 ms */
  uint32_t queue_packets; /* datagrams in flight on the path; 0: no limit */
  uint64_t queue_bytes;   /* datagram payload bytes in flight; 0: no limit */
};

/* Initial RTO of the stream loss model, and its cap. */
#define KZ_SIM_STREAM_RTO_NS UINT64_C(200000000)
#define KZ_SIM_STREAM_RTO_MAX_NS UINT64_C(6400000000)
/* How long a stream segment may wait for a partitioned path. */
#define KZ_SIM_DEFAULT_STREAM_TIMEOUT_NS UINT64_C(30000000000)

/* Sets the one-way latency of path from -> to (from == to is the path a
 * host uses to reach itself).  Returns 0, KZ_EINVAL or KZ_ENOMEM. */
int kz_sim_link_set_latency(struct kz_sim *sim, struct kz_sim_host *from,
                            struct kz_sim_host *to, uint64_t ns);
/* The latency of path from -> to (the default when unset). */
uint64_t kz_sim_link_latency(const struct kz_sim *sim,
                             const struct kz_sim_host *from,
                             const struct kz_sim_host *to);
/* Latency of every path not set explicitly (KZ_SIM_DEFAULT_LATENCY_NS). */
void kz_sim_set_default_latency(struct kz_sim *sim, uint64_t ns);
void kz_sim_set_connect_timeout(struct kz_sim *sim, uint64_t ns);
/* How long a stream segment waits for a blocked path before the stream
 * resets (KZ_SIM_DEFAULT_STREAM_TIMEOUT_NS by default). */
void kz_sim_set_stream_timeout(struct kz_sim *sim, uint64_t ns);

/* Sets the whole configuration of path from -> to (traced as a
 * "link_cfg" line).  Returns 0, KZ_EINVAL (NULL or foreign host, a ppm
 * above 1,000,000) or KZ_ENOMEM. */
int kz_sim_link_set(struct kz_sim *sim, struct kz_sim_host *from, struct kz_sim_host *to,
                    const struct kz_sim_link_cfg *cfg);
/* The configuration of path from -> to (the default when never set). */
void kz_sim_link_get(const struct kz_sim *sim, const struct kz_sim_host *from,
                     const struct kz_sim_host *to, struct kz_sim_link_cfg *out);
/* The configuration of every path not set explicitly (including the
 * paths set before through kz_sim_set_default_latency).  Returns 0 or
 * KZ_EINVAL (a ppm above 1,000,000). */
int kz_sim_set_default_link(struct kz_sim *sim, const struct kz_sim_link_cfg *cfg);
void kz_sim_default_link(const struct kz_sim *sim, struct kz_sim_link_cfg *out);

/* Partitions.  Blocks path from -> to now (and to -> from too when
 * `both`); kz_sim_heal reopens it.  Blocking is independent of the path's
 * configuration and survives kz_sim_link_set.  Traced as "partition" /
 * "heal" lines.  Returns 0, KZ_EINVAL or KZ_ENOMEM. */
int kz_sim_partition(struct kz_sim *sim, struct kz_sim_host *from, struct kz_sim_host *to,
                     bool both);
int kz_sim_heal(struct kz_sim *sim, struct kz_sim_host *from, struct kz_sim_host *to, bool both);
/* Reopens every blocked path. */
void kz_sim_heal_all(struct kz_sim *sim);
/* Whether path from -> to is blocked now. */
bool kz_sim_link_blocked(const struct kz_sim *sim, const struct kz_sim_host *from,
                         const struct kz_sim_host *to);
/* Scheduled fault: blocks from -> to (and back when `both`) at virtual
 * time `at_ns` and heals it `duration_ns` later (UINT64_MAX: never).
 * Returns 0, KZ_EINVAL or KZ_ENOMEM (nothing scheduled). */
int kz_sim_partition_at(struct kz_sim *sim, uint64_t at_ns, uint64_t duration_ns,
                        struct kz_sim_host *from, struct kz_sim_host *to, bool both);

/* ------------------------------------------------------------------ */
/* CPU model.
 *
 * Each host has `cores` cores (KZ_SIM_DEFAULT_CORES).  Every event a
 * process handles (datagram, stream data, accept, connect, close, timer
 * fire) costs service time from the cost table, chosen by the app's name
 * (its role kind) and the event kind.  An event that reaches a process at
 * time t starts at max(t, the earliest time a core of its host is free,
 * the end of a stall of the process); the callback runs at that start
 * time (the role sees now = start) and the core stays busy until start +
 * cost.  Events that have to wait form a FIFO run queue, so a busy host
 * queues work and latency rises with load.  Kernel work (SYN-ACK, RST of
 * a closed port, drops) costs nothing.  Set every cost to 0 for pure
 * network timing. */

#define KZ_SIM_DEFAULT_CORES 2

enum kz_sim_work {
  KZ_SIM_WORK_DGRAM = 0, /* a datagram delivered */
  KZ_SIM_WORK_DATA,      /* stream data delivered */
  KZ_SIM_WORK_TIMER,     /* the process's due timers run */
  KZ_SIM_WORK_ACCEPT,    /* a listener accepted a stream */
  KZ_SIM_WORK_CONNECT,   /* a connect completed */
  KZ_SIM_WORK_CLOSE,     /* a stream ended (FIN, RST, timeout) */
  KZ_SIM_WORK_KINDS
};

/* Service time of one event: base_ns[kind] + len * per_byte_ps / 1000
 * (len: payload bytes; picoseconds keep small per-byte costs integral). */
struct kz_sim_cost {
  uint64_t base_ns[KZ_SIM_WORK_KINDS];
  uint64_t per_byte_ps;
};

/* Defaults until calibrated from bench/: 20 us per datagram or stream
 * read, 5 us per timer fire, 10 us per accept/connect/close, 1 ns per
 * payload byte. */
#define KZ_SIM_COST_DEFAULT_INIT                                                    \
  {{UINT64_C(20000), UINT64_C(20000), UINT64_C(5000), UINT64_C(10000),             \
    UINT64_C(10000), UINT64_C(10000)},                                              \
   UINT64_C(1000)}

/* Sets the cost table row of apps named `kind` (NULL: the default row,
 * used by apps without a row of their own).  Rows are copied.  Applies to
 * events reaching processes from now on.  Returns 0, KZ_EINVAL (kind
 * longer than 31 chars) or KZ_ENOMEM. */
int kz_sim_set_cost(struct kz_sim *sim, const char *kind, const struct kz_sim_cost *cost);
/* Sets every row (the default and all kinds) to zero cost: the CPU model
 * then never delays anything. */
void kz_sim_set_cost_zero(struct kz_sim *sim);
/* The row that applies to apps named `kind` (NULL: the default row). */
void kz_sim_get_cost(const struct kz_sim *sim, const char *kind, struct kz_sim_cost *out);
/* Sets the number of cores of `h` (1..64).  Takes effect for events
 * arriving from now on.  Returns 0 or KZ_EINVAL. */
int kz_sim_host_set_cores(struct kz_sim_host *h, unsigned cores);
unsigned kz_sim_host_cores(const struct kz_sim_host *h);

/* Per-host CPU accounting, monotonic. */
struct kz_sim_cpu_stats {
  uint64_t events;      /* events handled by processes of the host */
  uint64_t busy_ns;     /* sum of service times (over all cores) */
  uint64_t wait_ns;     /* sum of run-queue waits (start - arrival) */
  uint64_t max_wait_ns; /* longest single wait */
};
/* Utilisation over [0, now] is busy_ns / (cores * now). */
void kz_sim_host_cpu_stats(const struct kz_sim_host *h, struct kz_sim_cpu_stats *out);

/* Stalls process `p` for `duration_ns` from now (a GC pause, a blocked
 * disk): events for it wait and are handled, in arrival order, when the
 * stall ends; a stall that is already longer is kept.  Traced as a
 * "stall" line.  Returns 0 or KZ_EINVAL (the process is not running). */
int kz_sim_proc_stall(struct kz_sim_proc *p, uint64_t duration_ns);
/* Scheduled fault: kz_sim_proc_stall(p, duration_ns) at `at_ns`.
 * Returns 0 or KZ_ENOMEM. */
int kz_sim_proc_stall_at(struct kz_sim_proc *p, uint64_t at_ns, uint64_t duration_ns);

/* ------------------------------------------------------------------ */
/* pcap output */

/* Writes every packet from now on to `f` as a classic pcap capture
 * (nanosecond timestamps, LINKTYPE_ETHERNET): datagrams as Ethernet /
 * IPv4 / UDP, streams as IPv4 / TCP with a SYN, SYN-ACK, ACK handshake,
 * consistent sequence and acknowledgement numbers, PSH/ACK data split
 * into 1460-byte segments, FIN/ACK and RST.  A packet is captured when it
 * arrives at its destination host (lost and partitioned packets do not
 * appear; duplicates do), timestamped KZ_SIM_EPOCH_NS + virtual time.
 * Datagrams above the 1500-byte MTU are written as IPv4 fragments.  The
 * file header is written at once; NULL stops.  The simulator does not
 * close `f`.  Returns 0 or KZ_EIO (a write failed; later write failures
 * mark the simulator failed with KZ_EIO). */
int kz_sim_set_pcap_file(struct kz_sim *sim, FILE *f);

/* ------------------------------------------------------------------ */
/* Running                                                             */

/* Runs the earliest event, jumping virtual time to it.  Returns 1 when
 * an event ran, 0 when the queue is empty, or a negative KZ_E* code when
 * the simulator failed (KZ_ENOMEM while scheduling; the run is then not
 * trustworthy and every later call returns the same error). */
int kz_sim_step(struct kz_sim *sim);
/* Runs every event due at or before `t_ns`, then sets the clock to t_ns
 * (never backwards).  Returns 0 or the simulator's failure code. */
int kz_sim_run_until(struct kz_sim *sim, uint64_t t_ns);
/* kz_sim_run_until(sim, now + ns). */
int kz_sim_run_for(struct kz_sim *sim, uint64_t ns);
uint64_t kz_sim_now(const struct kz_sim *sim);
/* Number of events waiting in the queue (a process with timers has
 * exactly one, however many timers it runs). */
size_t kz_sim_pending_events(const struct kz_sim *sim);
/* Time of the earliest pending event, UINT64_MAX when none. */
uint64_t kz_sim_next_event_time(const struct kz_sim *sim);
void kz_sim_stats(const struct kz_sim *sim, struct kz_sim_stats *out);

/* Schedules fn(sim, arg) at virtual time t_ns (clamped to now), ordered
 * with every other event.  For fault schedules, scenario steps and
 * tests.  Returns 0 or KZ_ENOMEM. */
typedef void kz_sim_event_fn(struct kz_sim *sim, void *arg);
int kz_sim_at(struct kz_sim *sim, uint64_t t_ns, kz_sim_event_fn *fn,
              void *arg);

/* ------------------------------------------------------------------ */
/* Trace                                                               */

/* The running trace hash: kz_hash64 chained over every trace line so far,
 * starting from 0, each line in its binary canonical form (its fields in
 * order; sim/README.md, "Trace").  It covers every event whether or not
 * a trace file or trace memory is attached, and does not depend on it. */
uint64_t kz_sim_trace_hash(const struct kz_sim *sim);
/* Also writes every trace line to `f` from now on (NULL stops).  The
 * simulator does not close it. */
void kz_sim_set_trace_file(struct kz_sim *sim, FILE *f);
/* Keeps (or stops keeping) the trace lines in memory, from now on. */
void kz_sim_set_trace_memory(struct kz_sim *sim, bool keep);
/* The trace kept in memory (empty unless kz_sim_set_trace_memory);
 * valid until the next event or kz_sim_free. */
const uint8_t *kz_sim_trace_data(const struct kz_sim *sim, size_t *len);
/* Appends a {"ev":"mark","label":...} line, for scenario steps. */
void kz_sim_trace_mark(struct kz_sim *sim, const char *label);
/* The log level (KZ_LOG_*) given to processes started from now on:
 * more verbose lines are not produced.  Default KZ_LOG_INFO.  Every log
 * line a process produces is a trace line. */
void kz_sim_set_log_level(struct kz_sim *sim, int level);

/* ------------------------------------------------------------------ */
/* Storage inspection.
 *
 * Each host has an in-memory file system; a process's paths are rooted
 * in "<process name>/".  Every file has two images: the current content
 * (what reads see) and the synced content (what survives a crash);
 * kz_file_sync copies current to synced.  Renames and removals are
 * durable as soon as they return (a rename moves both images).  On a
 * crash every file reverts to its synced image and files never synced
 * vanish, whatever their name. */

/* Points *data and *len at process `p`'s file `path`: its current image, or
 * with `synced` the image that would survive a crash.  Valid until the
 * next simulator call.  Returns 0 or KZ_ENOENT (no such file, or never
 * synced when `synced`). */
int kz_sim_file_get(const struct kz_sim_proc *p, const char *path,
                    bool synced, const uint8_t **data, size_t *len);

#endif /* KZ_SIM_H */
