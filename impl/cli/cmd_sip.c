/* cmd_sip.c — `kz sip check [--json] FILE...`: parses each file as one SIP datagram and reports validity. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sip_msg.h"

static void sip_usage(FILE *out) {
  fprintf(out,
          "usage: kz sip check [--json] FILE...\n"
          "  Parses each FILE as one SIP message (datagram framing) and prints\n"
          "  'FILE: OK' or 'FILE: INVALID: <reason>' (--json: one JSON object a line).\n"
          "  Exit status: 0 all valid, 1 some invalid, 2 usage or I/O error.\n");
}

/* Reads a whole file; NULL with errno set on failure. */
static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 8192, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
    if (n == cap) {
      char *nb = realloc(buf, cap *= 2);
      if (!nb) free(buf);
      buf = nb;
    }
  }
  int bad = buf && ferror(f);
  int saved = errno;
  fclose(f);
  if (bad) {
    free(buf);
    errno = saved ? saved : EIO;
    return NULL;
  }
  if (!buf) errno = ENOMEM;
  *len = n;
  return buf;
}

/* JSON string with RFC 8259 escaping; bytes >= 0x80 pass through (file
 * names are usually UTF-8; reasons are ASCII). */
static void json_str(FILE *out, const char *s) {
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", out); break;
    case '\\': fputs("\\\\", out); break;
    case '\n': fputs("\\n", out); break;
    case '\r': fputs("\\r", out); break;
    case '\t': fputs("\\t", out); break;
    case '\b': fputs("\\b", out); break;
    case '\f': fputs("\\f", out); break;
    default:
      if (*p < 0x20)
        fprintf(out, "\\u%04x", *p);
      else
        fputc(*p, out);
    }
  }
  fputc('"', out);
}

static int sip_check(int argc, char **argv) {
  int json = 0, first = 1;
  for (; first < argc; first++) {
    if (!strcmp(argv[first], "--json")) {
      json = 1;
    } else if (!strcmp(argv[first], "--")) {
      first++;
      break;
    } else if (!strcmp(argv[first], "-h") || !strcmp(argv[first], "--help")) {
      sip_usage(stdout);
      return 0;
    } else if (argv[first][0] == '-' && argv[first][1]) {
      fprintf(stderr, "kz sip check: unknown option '%s'\n", argv[first]);
      sip_usage(stderr);
      return 2;
    } else {
      break;
    }
  }
  if (first >= argc) {
    fprintf(stderr, "kz sip check: no FILE given\n");
    sip_usage(stderr);
    return 2;
  }
  int status = 0;
  for (int i = first; i < argc; i++) {
    size_t len = 0;
    char *data = read_all(argv[i], &len);
    if (!data) {
      fprintf(stderr, "kz sip check: %s: %s\n", argv[i], strerror(errno));
      status = 2;
      continue;
    }
    struct kz_sip_msg *m = NULL;
    struct kz_sip_perr err;
    int rc = kz_sip_msg_parse(&m, data, len, 0, &err);
    const char *reason = NULL;
    if (rc == KZ_ENOMEM) {
      fprintf(stderr, "kz sip check: %s: out of memory\n", argv[i]);
      free(data);
      status = 2;
      continue;
    }
    if (rc) reason = err.reason[0] ? err.reason : kz_strerror(rc);
    if (json) {
      fputs("{\"file\":", stdout);
      json_str(stdout, argv[i]);
      fputs(rc ? ",\"valid\":false,\"reason\":" : ",\"valid\":true,\"reason\":null", stdout);
      if (rc) json_str(stdout, reason);
      fputs("}\n", stdout);
    } else if (rc) {
      printf("%s: INVALID: %s\n", argv[i], reason);
    } else {
      printf("%s: OK\n", argv[i]);
    }
    if (rc && status == 0) status = 1;
    m = kz_deref(m);
    free(data);
  }
  return status;
}

int kz_cli_sip(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
      !strcmp(argv[1], "help")) {
    sip_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "check")) return sip_check(argc - 1, argv + 1);
  fprintf(stderr, "kz sip: unknown subcommand '%s'\n", argv[1]);
  sip_usage(stderr);
  return 2;
}
