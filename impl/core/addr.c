/* addr.c — kz_addr: IPv4 / bracketed IPv6 endpoint parsing, formatting and comparison. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "kz/env.h"
#include "kz/error.h"

struct kz_addr kz_addr_v4(uint32_t ip_host_order, uint16_t port) {
  struct kz_addr a;
  memset(&a, 0, sizeof(a));
  a.family = 4;
  a.port = port;
  a.ip[0] = (uint8_t)(ip_host_order >> 24);
  a.ip[1] = (uint8_t)(ip_host_order >> 16);
  a.ip[2] = (uint8_t)(ip_host_order >> 8);
  a.ip[3] = (uint8_t)ip_host_order;
  return a;
}

/* Parses a decimal port of 1..5 digits filling [s, end).  No sign, no
 * leading '+', values up to 65535. */
static int parse_port(const char *s, const char *end, uint16_t *port) {
  size_t n = (size_t)(end - s);
  if (n == 0 || n > 5) return KZ_EINVAL;
  uint32_t v = 0;
  for (; s < end; s++) {
    if (*s < '0' || *s > '9') return KZ_EINVAL;
    v = v * 10 + (uint32_t)(*s - '0');
  }
  if (v > 65535) return KZ_EINVAL;
  *port = (uint16_t)v;
  return 0;
}

bool kz_ip4_parse(const char *p, size_t n, unsigned flags, uint8_t out[4]) {
  uint8_t ip[4];
  size_t i = 0;
  for (int part = 0; part < 4; part++) {
    if (part > 0) {
      if (i >= n || p[i] != '.') return false;
      i++;
    }
    size_t start = i;
    unsigned v = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9' && i - start < 3) v = v * 10 + (unsigned)(p[i++] - '0');
    if (i == start || v > 255) return false;
    if (!(flags & KZ_IP4_LEADING_ZEROS) && i - start > 1 && p[start] == '0') return false;
    ip[part] = (uint8_t)v;
  }
  if (i != n) return false;
  if (out) memcpy(out, ip, 4);
  return true;
}

static int parse_v6(const char *s, size_t n, uint8_t ip[16]) {
  char tmp[INET6_ADDRSTRLEN];
  if (n == 0 || n >= sizeof(tmp)) return KZ_EINVAL;
  memcpy(tmp, s, n);
  tmp[n] = 0;
  return inet_pton(AF_INET6, tmp, ip) == 1 ? 0 : KZ_EINVAL;
}

int kz_addr_from_literal(struct kz_addr *out, const char *host, size_t len, uint16_t port, unsigned flags) {
  if (!out || !host) return KZ_EINVAL;
  struct kz_addr a;
  memset(&a, 0, sizeof(a));
  a.port = port;
  if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
    host++;
    len -= 2;
  }
  if (memchr(host, ':', len)) {
    if (parse_v6(host, len, a.ip)) return KZ_EINVAL;
    a.family = 6;
  } else {
    if (!kz_ip4_parse(host, len, flags, a.ip)) return KZ_EINVAL;
    a.family = 4;
  }
  *out = a;
  return 0;
}

int kz_addr_parse(struct kz_addr *out, const char *s) {
  if (!out || !s) return KZ_EINVAL;
  struct kz_addr a;
  memset(&a, 0, sizeof(a));
  const char *end = s + strlen(s);
  if (*s == '[') {
    const char *close = memchr(s, ']', (size_t)(end - s));
    if (!close) return KZ_EINVAL;
    if (parse_v6(s + 1, (size_t)(close - s - 1), a.ip)) return KZ_EINVAL;
    a.family = 6;
    const char *rest = close + 1;
    if (rest != end) {
      if (*rest != ':' || parse_port(rest + 1, end, &a.port)) return KZ_EINVAL;
    }
  } else {
    const char *colon = memchr(s, ':', (size_t)(end - s));
    const char *ip_end = colon ? colon : end;
    if (!kz_ip4_parse(s, (size_t)(ip_end - s), 0, a.ip)) return KZ_EINVAL;
    a.family = 4;
    if (colon && parse_port(colon + 1, end, &a.port)) return KZ_EINVAL;
  }
  *out = a;
  return 0;
}

size_t kz_addr_format_ip(const struct kz_addr *a, char *out, size_t outlen) {
  char tmp[INET6_ADDRSTRLEN];
  if (a->family == 4) {
    snprintf(tmp, sizeof(tmp), "%u.%u.%u.%u", a->ip[0], a->ip[1], a->ip[2], a->ip[3]);
  } else if (a->family == 6) {
    if (!inet_ntop(AF_INET6, a->ip, tmp, sizeof(tmp))) tmp[0] = 0;
  } else {
    snprintf(tmp, sizeof(tmp), "(unset)");
  }
  int n = snprintf(out, outlen, "%s", tmp);
  return n < 0 ? 0 : (size_t)n;
}

size_t kz_addr_format(const struct kz_addr *a, char *out, size_t outlen) {
  char ip[INET6_ADDRSTRLEN];
  kz_addr_format_ip(a, ip, sizeof(ip));
  int n;
  if (a->family == 6) {
    n = snprintf(out, outlen, "[%s]:%u", ip, (unsigned)a->port);
  } else if (a->family == 4) {
    n = snprintf(out, outlen, "%s:%u", ip, (unsigned)a->port);
  } else {
    n = snprintf(out, outlen, "%s", ip);
  }
  return n < 0 ? 0 : (size_t)n;
}

bool kz_addr_eq(const struct kz_addr *a, const struct kz_addr *b) {
  if (a->family != b->family || a->port != b->port) return false;
  size_t n = a->family == 4 ? 4 : a->family == 6 ? 16 : 0;
  return n == 0 || memcmp(a->ip, b->ip, n) == 0;
}

uint32_t kz_addr_v4_host(const struct kz_addr *a) {
  if (a->family != 4) return 0;
  return (uint32_t)a->ip[0] << 24 | (uint32_t)a->ip[1] << 16 | (uint32_t)a->ip[2] << 8 |
         (uint32_t)a->ip[3];
}
