/* cmd_bus.c — `kz bus`: bus tools; `kz bus tap` prints what crosses a RabbitMQ broker as JSON lines. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "cli.h"
#include "kz/bus.h"
#include "kz/bus_amqp.h"
#include "kz/bus_client.h"
#include "kz/error.h"
#include "kz/uv_env.h"

#define TAP_MAX_URIS 8

static void bus_usage(FILE *out) {
  fprintf(out,
          "usage: kz bus tap --uri URI [--uri URI]... [--count N] [--timeout S] "
          "[EXCHANGE:ROUTING_KEY]...\n"
          "\n"
          "Connects to RabbitMQ, declares an exclusive auto-delete queue, binds\n"
          "it, and prints every message as one JSON line on stdout:\n"
          "  {\"exchange\":..,\"routing_key\":..,\"body\":BODY}\n"
          "BODY is the message's JSON when it parses, else a string.\n"
          "\n"
          "  --uri URI      amqp://user:pass@host:port/vhost (repeat for failover)\n"
          "  --count N      stop after N messages\n"
          "  --timeout S    stop after S seconds\n"
          "  EXCHANGE:KEY   a binding; KEY may use the topic wildcards * and #.\n"
          "                 Kazoo's exchanges are declared (with their types)\n"
          "                 before binding; other exchanges must already exist.\n"
          "\n"
          "Without bindings, every Kazoo exchange that can be tapped is bound:\n"
          "topic exchanges with \"#\", fanout exchanges with \"\".  Direct\n"
          "exchanges (targeted, callctl, frontier) route by exact queue name, so\n"
          "they are only tapped through an explicit binding (targeted:QUEUE).\n"
          "\n"
          "Status lines go to stderr (\"listening\" once the bindings are in\n"
          "place).  Exit status: 0 after Ctrl-C, --count messages or --timeout\n"
          "without --count; 1 when --timeout expires before --count messages;\n"
          "2 on usage or broker errors (a binding the broker refuses).\n");
}

struct tap {
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  uv_timer_t timer;
  struct kz_uv_env *env;
  struct kz_bus *bus;
  char queue[96];
  long count;   /* 0 = unlimited */
  long printed;
  int exit_code;
  size_t n_bindings;
  bool probing;
};

/* Prints one delivery as a JSON line. */
static void tap_print(struct tap *t, const struct kz_bus_delivery *d) {
  json_error_t err;
  json_t *body = json_loadb((const char *)d->body, d->len, JSON_DECODE_ANY, &err);
  if (!body) body = json_stringn((const char *)d->body, d->len);
  if (!body) {
    /* Not UTF-8: show it byte for byte, other bytes as '?'. */
    char *s = malloc(d->len + 1);
    if (s) {
      for (size_t i = 0; i < d->len; i++)
        s[i] = d->body[i] < 0x80 && d->body[i] ? (char)d->body[i] : '?';
      s[d->len] = '\0';
      body = json_string(s);
      free(s);
    }
  }
  json_t *line = json_object();
  json_object_set_new(line, "exchange", json_string(d->exchange));
  json_object_set_new(line, "routing_key", json_string(d->routing_key));
  json_object_set_new(line, "body", body ? body : json_null());
  char *s = json_dumps(line, JSON_COMPACT);
  json_decref(line);
  if (s) {
    fputs(s, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    free(s);
  }
}

static void tap_stop(struct tap *t, int code) {
  t->exit_code = code;
  uv_stop(&t->loop);
}

static void on_delivery(void *arg, struct kz_bus *bus,
                        const struct kz_bus_delivery *d) {
  struct tap *t = arg;
  (void)bus;
  if (t->count && t->printed >= t->count) return;
  tap_print(t, d);
  t->printed++;
  if (t->count && t->printed >= t->count) tap_stop(t, 0);
}

/* The probe's confirm comes back after the broker applied everything
 * sent before it on this connection, the bindings included. */
static void on_probe(void *arg, struct kz_bus *bus, int status) {
  struct tap *t = arg;
  (void)bus;
  t->probing = false;
  if (status == 0)
    fprintf(stderr, "kz bus tap: listening (%zu bindings, queue %s)\n",
            t->n_bindings, t->queue);
}

static void on_state(void *arg, struct kz_bus *bus, enum kz_bus_state st,
                     int broker, const char *reason) {
  struct tap *t = arg;
  if (st == KZ_BUS_UP && reason) {
    fprintf(stderr, "kz bus tap: broker error: %s\n", reason);
    tap_stop(t, 2);
    return;
  }
  if (st == KZ_BUS_DOWN) {
    fprintf(stderr, "kz bus tap: disconnected%s%s\n", reason ? ": " : "",
            reason ? reason : "");
    return;
  }
  fprintf(stderr, "kz bus tap: connected to broker %d\n", broker);
  if (!t->probing) {
    t->probing = true;
    if (kz_bus_publish(bus, "targeted", "kz-bus-tap-probe", "{}", 2, on_probe,
                       t) != 0)
      t->probing = false;
  }
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)signum;
  tap_stop(h->data, 0);
}

static void on_timeout(uv_timer_t *h) {
  struct tap *t = h->data;
  tap_stop(t, t->count ? 1 : 0);
}

/* Binds the tap queue to exchange:key, declaring Kazoo's exchanges. */
static int tap_bind(struct tap *t, const char *ex, const char *key) {
  const struct kz_bus_exchange *k = kz_bus_exchange_find(ex);
  int rc = 0;
  if (k) rc = kz_bus_declare_exchange(t->bus, k->name, k->type);
  if (!rc) rc = kz_bus_bind(t->bus, t->queue, ex, key);
  if (!rc) t->n_bindings++;
  return rc;
}

static int tap_main(int argc, char **argv) {
  const char *uris[TAP_MAX_URIS];
  size_t n_uris = 0;
  long count = 0;
  double timeout_s = 0;
  int first_binding = argc;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      bus_usage(stdout);
      return 0;
    }
    if (!strcmp(a, "--uri") && i + 1 < argc) {
      if (n_uris == TAP_MAX_URIS) {
        fprintf(stderr, "kz bus tap: at most %d --uri\n", TAP_MAX_URIS);
        return 2;
      }
      uris[n_uris++] = argv[++i];
    } else if (!strcmp(a, "--count") && i + 1 < argc) {
      char *end;
      count = strtol(argv[++i], &end, 10);
      if (*end || count <= 0) {
        fprintf(stderr, "kz bus tap: bad --count '%s'\n", argv[i]);
        return 2;
      }
    } else if (!strcmp(a, "--timeout") && i + 1 < argc) {
      char *end;
      timeout_s = strtod(argv[++i], &end);
      if (*end || timeout_s <= 0) {
        fprintf(stderr, "kz bus tap: bad --timeout '%s'\n", argv[i]);
        return 2;
      }
    } else if (a[0] == '-') {
      fprintf(stderr, "kz bus tap: unknown option '%s'\n", a);
      bus_usage(stderr);
      return 2;
    } else {
      first_binding = i;
      break;
    }
  }
  for (int i = first_binding; i < argc; i++) {
    if (!strchr(argv[i], ':') || argv[i][0] == ':') {
      fprintf(stderr, "kz bus tap: binding '%s' is not EXCHANGE:ROUTING_KEY\n",
              argv[i]);
      return 2;
    }
  }
  if (n_uris == 0) {
    fprintf(stderr, "kz bus tap: --uri is required\n");
    bus_usage(stderr);
    return 2;
  }

  struct tap t;
  memset(&t, 0, sizeof t);
  t.count = count;
  t.exit_code = 0;
  if (uv_loop_init(&t.loop) != 0) return 2;
  /* The env's seed names this client's reply queue: make it unique. */
  uint64_t seed = kz_cli_default_seed();
  int rc = kz_uv_env_new(&t.env, &t.loop, "kz-bus-tap", seed, NULL);
  struct kz_bus_backend be;
  if (!rc) rc = kz_bus_amqp_new(&be, &t.loop, uris, n_uris, NULL);
  if (rc) {
    fprintf(stderr, "kz bus tap: %s\n", kz_strerror(rc));
    if (t.env) kz_uv_env_free(t.env);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    uv_loop_close(&t.loop);
    return 2;
  }
  char node[128] = "kz_tap@localhost";
  char host[64];
  if (gethostname(host, sizeof host) == 0) {
    host[sizeof host - 1] = '\0';
    snprintf(node, sizeof node, "kz_tap@%s", host);
  }
  struct kz_bus_cfg cfg = {.node = node,
                           .app_name = "kz-bus-tap",
                           .app_version = "0.1.0",
                           .on_state = on_state,
                           .state_arg = &t};
  rc = kz_bus_new(&t.bus, kz_uv_env_get(t.env), &be, &cfg);
  if (!rc) {
    snprintf(t.queue, sizeof t.queue, "%s.tap", kz_bus_server_id(t.bus));
    struct kz_bus_queue_opts qo = {.exclusive = true, .auto_delete = true};
    rc = kz_bus_declare_queue(t.bus, t.queue, &qo);
  }
  if (!rc && first_binding == argc) {
    size_t n;
    const struct kz_bus_exchange *ex = kz_bus_exchanges(&n);
    for (size_t i = 0; i < n && !rc; i++) {
      if (ex[i].type == KZ_BUS_EX_TOPIC) rc = tap_bind(&t, ex[i].name, "#");
      else if (ex[i].type == KZ_BUS_EX_FANOUT) rc = tap_bind(&t, ex[i].name, "");
    }
  }
  for (int i = first_binding; i < argc && !rc; i++) {
    char ex[256];
    const char *colon = strchr(argv[i], ':');
    size_t el = (size_t)(colon - argv[i]);
    if (el >= sizeof ex) el = sizeof ex - 1;
    memcpy(ex, argv[i], el);
    ex[el] = '\0';
    rc = tap_bind(&t, ex, colon + 1);
  }
  if (!rc) rc = kz_bus_consume(t.bus, t.queue, false, on_delivery, &t, NULL);
  if (rc) {
    fprintf(stderr, "kz bus tap: %s\n", kz_strerror(rc));
    t.exit_code = 2;
  } else {
    uv_signal_init(&t.loop, &t.sigint);
    uv_signal_init(&t.loop, &t.sigterm);
    t.sigint.data = t.sigterm.data = &t;
    uv_signal_start(&t.sigint, on_signal, SIGINT);
    uv_signal_start(&t.sigterm, on_signal, SIGTERM);
    uv_timer_init(&t.loop, &t.timer);
    t.timer.data = &t;
    if (timeout_s > 0)
      uv_timer_start(&t.timer, on_timeout, (uint64_t)(timeout_s * 1000.0), 0);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t.sigint, NULL);
    uv_close((uv_handle_t *)&t.sigterm, NULL);
    uv_close((uv_handle_t *)&t.timer, NULL);
  }
  kz_bus_free(t.bus);
  kz_uv_env_free(t.env);
  uv_run(&t.loop, UV_RUN_DEFAULT);
  uv_loop_close(&t.loop);
  return t.exit_code;
}

int kz_cli_bus(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
      !strcmp(argv[1], "help")) {
    bus_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "tap")) return tap_main(argc - 1, argv + 1);
  fprintf(stderr, "kz bus: unknown subcommand '%s'\n", argv[1]);
  bus_usage(stderr);
  return 2;
}
