/* progress.c — the progress line of a simulated run: redrawn in place on a terminal, one line per step elsewhere. */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "kz/sim_report.h"

/* The progress line is about the wall clock (how long the user waits), so
 * it reads it; nothing it does reaches the trace. */
static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void kz_sim_progress_init(struct kz_sim_progress *p, FILE *out, uint64_t total_ns, int tty,
                          unsigned step_pct) {
  p->out = out;
  p->total_ns = total_ns ? total_ns : 1;
  p->tty = tty < 0 ? (out && isatty(fileno(out))) : tty != 0;
  p->step_pct = step_pct ? step_pct : 10;
  p->next_pct = p->step_pct;
  p->last_draw = 0;
  p->drawn = false;
}

static unsigned pct_of(const struct kz_sim_progress *p, uint64_t now_ns) {
  uint64_t pct = now_ns >= p->total_ns ? 100 : now_ns / (p->total_ns / 100 ? p->total_ns / 100 : 1);
  return pct > 100 ? 100 : (unsigned)pct;
}

static void draw(struct kz_sim_progress *p, uint64_t now_ns, uint64_t events, uint64_t calls) {
  unsigned pct = pct_of(p, now_ns);
  char bar[21];
  for (unsigned i = 0; i < 20; i++) bar[i] = i < pct / 5 ? '#' : '.';
  bar[20] = 0;
  fprintf(p->out, "%s[%s] %3u%%  %" PRIu64 ".%03" PRIu64 " / %" PRIu64 ".%03" PRIu64
                  " s simulated  %" PRIu64 " events  %" PRIu64 " calls%s",
          p->tty ? "\r" : "", bar, pct, now_ns / 1000000000, now_ns / 1000000 % 1000,
          p->total_ns / 1000000000, p->total_ns / 1000000 % 1000, events, calls, p->tty ? "  " : "\n");
  fflush(p->out);
}

void kz_sim_progress_update(struct kz_sim_progress *p, uint64_t now_ns, uint64_t events,
                            uint64_t calls) {
  if (!p->out) return;
  if (p->tty) {
    double w = wall_now();
    if (p->drawn && w - p->last_draw < 0.1) return;
    p->last_draw = w;
    p->drawn = true;
    draw(p, now_ns, events, calls);
    return;
  }
  unsigned pct = pct_of(p, now_ns);
  if (pct < p->next_pct || pct >= 100) return; /* 100% is finish's line */
  while (p->next_pct <= pct) p->next_pct += p->step_pct;
  draw(p, now_ns, events, calls);
}

void kz_sim_progress_finish(struct kz_sim_progress *p, uint64_t now_ns, uint64_t events,
                            uint64_t calls) {
  if (!p->out) return;
  /* A run that ended before its planned time is done all the same. */
  p->total_ns = now_ns ? now_ns : 1;
  draw(p, now_ns, events, calls);
  if (p->tty) fputc('\n', p->out);
  fflush(p->out);
}
