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
 * and/or a FILE*) and folded into a 64-bit running hash (kz_hash64
 * chained over the line bytes).  Lines use integers and strings only, no
 * pointers, so the same seed gives byte-identical traces on every run of
 * the same binary.
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

/* ------------------------------------------------------------------ */
/* Links: one per directed path (from -> to), created on first setting.
 * Now: a fixed latency.  Later: loss, jitter, duplication, reordering
 * and partitions hang off the same struct.                            */

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

/* The running trace hash: kz_hash64 chained over every trace line so far
 * (including its '\n'), starting from 0. */
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
