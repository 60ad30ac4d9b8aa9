/* driver.c — the simulator side of kz_env_ops: one process's env calls mapped to virtual time, network, storage. */
#include <string.h>

#include "kz/error.h"
#include "sim_internal.h"

/* Every op receives the process (struct kz_sim_proc) as `drv`. */

static uint64_t op_now(void *drv) {
  struct kz_sim_proc *p = drv;
  return p->host->sim->now;
}

static int64_t op_wall(void *drv) {
  struct kz_sim_proc *p = drv;
  return KZ_SIM_EPOCH_NS + (int64_t)p->host->sim->now + kz_sim_host_wall_offset(p->host);
}

/* A process has at most one event in the simulator's queue for its
 * timers, keyed at its earliest deadline.  Re-arming removes and pushes
 * it again, which is what keeps the queue one event per env however many
 * timers the role runs. */
void kz_sim_proc_arm(struct kz_sim_proc *p, uint64_t deadline) {
  struct kz_sim *sim = p->host->sim;
  struct sim_event *ev = &p->timer_ev;
  /* Waiting for a core: the timers run when it starts, whatever is due
   * then, and the event is re-armed after. */
  if (p->timer_waiting) return;
  if (!p->running || deadline == UINT64_MAX) {
    kz_sim_unschedule(sim, ev);
    return;
  }
  uint64_t key = deadline < sim->now ? sim->now : deadline;
  if (kz_heap_node_queued(&ev->node)) {
    if (ev->node.key == key) return;
    kz_sim_unschedule(sim, ev);
  }
  kz_sim_schedule(sim, ev, key);
}

void kz_sim_proc_timer_fire(struct kz_sim *sim, struct sim_event *ev) {
  struct kz_sim_proc *p = KZ_CONTAINER_OF(ev, struct kz_sim_proc, timer_ev);
  if (!p->running) return;
  uint64_t at;
  if (!kz_sim_cpu_gate(p, &p->timer_admitted, KZ_SIM_WORK_TIMER, 0, &at)) {
    p->timer_waiting = true; /* arm() leaves the event alone meanwhile */
    kz_sim_schedule(sim, ev, at);
    return;
  }
  p->timer_waiting = false;
  kz_sim_tr_begin(sim, "timer");
  kz_sim_tr_who(sim, p->host, p);
  kz_sim_tr_end(sim);
  kz_env_run_timers(&p->env);
  /* The env reports deadline changes itself; asking again costs nothing
   * and guarantees that timers started for an already passed deadline
   * get an event of their own. */
  if (p->running) kz_sim_proc_arm(p, kz_env_next_deadline(&p->env));
}

static void op_deadline_changed(void *drv, uint64_t deadline) {
  kz_sim_proc_arm(drv, deadline);
}

static void op_log_write(void *drv, int level, const char *line, size_t len) {
  struct kz_sim_proc *p = drv;
  struct kz_sim *sim = p->host->sim;
  while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
  kz_sim_tr_begin(sim, "log");
  kz_sim_tr_who(sim, p->host, p);
  kz_sim_tr_str(sim, "level", kz_log_level_name(level));
  kz_sim_tr_strn(sim, "line", line, len);
  kz_sim_tr_end(sim);
}

static int op_udp_bind(void *drv, struct kz_udp *u, const struct kz_addr *local) {
  return kz_sim_net_udp_bind(drv, u, local);
}
static int op_udp_send(void *drv, struct kz_udp *u, const struct kz_addr *to, const void *data,
                       size_t len) {
  return kz_sim_net_udp_send(drv, u, to, data, len);
}
static void op_udp_close(void *drv, struct kz_udp *u) { kz_sim_net_udp_close(drv, u); }
static int op_listen(void *drv, struct kz_listener *l, const struct kz_addr *local) {
  return kz_sim_net_listen(drv, l, local);
}
static void op_listen_close(void *drv, struct kz_listener *l) { kz_sim_net_listen_close(drv, l); }
static int op_connect(void *drv, struct kz_stream *s, const struct kz_addr *remote) {
  return kz_sim_net_connect(drv, s, remote);
}
static int op_stream_write(void *drv, struct kz_stream *s, const void *data, size_t len) {
  return kz_sim_net_stream_write(drv, s, data, len);
}
static void op_stream_close(void *drv, struct kz_stream *s) { kz_sim_net_stream_close(drv, s); }

static int op_file_open(void *drv, struct kz_file *f, const char *path, int flags) {
  return kz_sim_fs_open(drv, f, path, flags);
}
static int op_file_read(void *drv, struct kz_file *f, uint64_t off, void *buf, size_t len,
                        size_t *nread) {
  return kz_sim_fs_read(drv, f, off, buf, len, nread);
}
static int op_file_write(void *drv, struct kz_file *f, uint64_t off, const void *buf, size_t len) {
  return kz_sim_fs_write(drv, f, off, buf, len);
}
static int op_file_size(void *drv, struct kz_file *f, uint64_t *size) {
  return kz_sim_fs_size(drv, f, size);
}
static int op_file_truncate(void *drv, struct kz_file *f, uint64_t size) {
  return kz_sim_fs_truncate(drv, f, size);
}
static int op_file_sync(void *drv, struct kz_file *f) { return kz_sim_fs_sync(drv, f); }
static void op_file_close(void *drv, struct kz_file *f) { kz_sim_fs_close(drv, f); }
static int op_fs_rename(void *drv, const char *from, const char *to) {
  return kz_sim_fs_rename(drv, from, to);
}
static int op_fs_remove(void *drv, const char *path) { return kz_sim_fs_remove(drv, path); }
static int op_fs_exists(void *drv, const char *path, bool *exists) {
  return kz_sim_fs_exists(drv, path, exists);
}

const struct kz_env_ops kz_sim_env_ops = {
    .now = op_now,
    .wall = op_wall,
    .deadline_changed = op_deadline_changed,
    .log_write = op_log_write,
    .udp_bind = op_udp_bind,
    .udp_send = op_udp_send,
    .udp_close = op_udp_close,
    .listen = op_listen,
    .listen_close = op_listen_close,
    .connect = op_connect,
    .stream_write = op_stream_write,
    .stream_close = op_stream_close,
    .file_open = op_file_open,
    .file_read = op_file_read,
    .file_write = op_file_write,
    .file_size = op_file_size,
    .file_truncate = op_file_truncate,
    .file_sync = op_file_sync,
    .file_close = op_file_close,
    .fs_rename = op_fs_rename,
    .fs_remove = op_fs_remove,
    .fs_exists = op_fs_exists,
};
