/* pcap.c — writes the simulated traffic as a classic pcap capture (Ethernet / IPv4 / UDP and TCP) that Wireshark decodes. */
#include <string.h>

#include "kz/bytes.h"
#include "kz/error.h"
#include "sim_internal.h"

/* Format: the classic libpcap file (not pcapng), nanosecond variant
 * (magic 0xa1b23c4d), little-endian, LINKTYPE_ETHERNET.  Hosts get the
 * locally administered MAC 02:00:<IPv4 address>.  Every checksum (IPv4,
 * UDP, TCP) is computed, so "bad checksum" analysis stays quiet.  Written
 * by hand: the format is a 24-byte file header and a 16-byte header per
 * frame, and this keeps the simulator free of a libpcap dependency. */

#define PCAP_SNAPLEN 262144u
#define MTU 1500u
#define MSS 1460u /* MTU - IPv4 - TCP headers */

/* Ones' complement sum over bytes (big-endian 16-bit words), unfolded. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)p[i] << 8 | p[i + 1];
  if (len & 1) sum += (uint32_t)p[len - 1] << 8;
  return sum;
}

static uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static void put(struct kz_sim *sim, const void *p, size_t n) {
  if (!sim->pcap_file || n == 0) return;
  if (fwrite(p, 1, n, sim->pcap_file) != n) {
    kz_sim_fail(sim, KZ_EIO);
    sim->pcap_file = NULL;
  }
}

int kz_sim_set_pcap_file(struct kz_sim *sim, FILE *f) {
  sim->pcap_file = f;
  if (!f) return 0;
  uint8_t h[24] = {0};
  kz_put_le32(h, 0xa1b23c4du);
  h[4] = 2; /* version 2.4 */
  h[6] = 4;
  kz_put_le32(h + 16, PCAP_SNAPLEN);
  kz_put_le32(h + 20, 1); /* LINKTYPE_ETHERNET */
  if (fwrite(h, 1, sizeof h, f) != sizeof h) {
    sim->pcap_file = NULL;
    return KZ_EIO;
  }
  return 0;
}

static void mac_of(uint8_t out[6], const struct kz_addr *a) {
  out[0] = 0x02;
  out[1] = 0x00;
  memcpy(out + 2, a->ip, 4);
}

/* One frame: Ethernet + IPv4 header (built here) + `l4` (a transport
 * header or nothing) + `data`.  `frag` is the IPv4 flags/fragment-offset
 * field. */
static void frame(struct kz_sim *sim, const struct kz_addr *src, const struct kz_addr *dst,
                  uint8_t proto, uint16_t id, uint16_t frag, const uint8_t *l4, size_t l4len,
                  const uint8_t *data, size_t len) {
  size_t ip_len = 20 + l4len + len;
  size_t frame_len = 14 + ip_len;
  uint64_t t = (uint64_t)KZ_SIM_EPOCH_NS + sim->now;
  uint8_t rec[16];
  kz_put_le32(rec, (uint32_t)(t / UINT64_C(1000000000)));
  kz_put_le32(rec + 4, (uint32_t)(t % UINT64_C(1000000000)));
  uint32_t incl = frame_len > PCAP_SNAPLEN ? PCAP_SNAPLEN : (uint32_t)frame_len;
  kz_put_le32(rec + 8, incl);
  kz_put_le32(rec + 12, (uint32_t)frame_len);
  uint8_t eth[14];
  mac_of(eth, dst);
  mac_of(eth + 6, src);
  kz_put_be16(eth + 12, 0x0800);
  uint8_t ip[20] = {0};
  ip[0] = 0x45;
  kz_put_be16(ip + 2, (uint16_t)ip_len);
  kz_put_be16(ip + 4, id);
  kz_put_be16(ip + 6, frag);
  ip[8] = 64;
  ip[9] = proto;
  memcpy(ip + 12, src->ip, 4);
  memcpy(ip + 16, dst->ip, 4);
  kz_put_be16(ip + 10, csum_fold(csum_add(0, ip, 20)));
  put(sim, rec, sizeof rec);
  put(sim, eth, sizeof eth);
  put(sim, ip, sizeof ip);
  size_t room = incl - 14 - 20; /* snaplen cuts only giant datagrams */
  size_t n = l4len < room ? l4len : room;
  put(sim, l4, n);
  room -= n;
  put(sim, data, len < room ? len : room);
}

/* Sum of the pseudo header (src, dst, zero, proto, length). */
static uint32_t pseudo_sum(const struct kz_addr *src, const struct kz_addr *dst, uint8_t proto,
                           size_t len) {
  uint8_t ph[12] = {0};
  memcpy(ph, src->ip, 4);
  memcpy(ph + 4, dst->ip, 4);
  ph[9] = proto;
  kz_put_be16(ph + 10, (uint16_t)len);
  return csum_add(0, ph, sizeof ph);
}

void kz_sim_pcap_udp(struct kz_sim *sim, const struct kz_addr *src, const struct kz_addr *dst,
                     const uint8_t *data, size_t len) {
  if (!sim->pcap_file) return;
  uint8_t udp[8];
  kz_put_be16(udp, src->port);
  kz_put_be16(udp + 2, dst->port);
  kz_put_be16(udp + 4, (uint16_t)(8 + len));
  kz_put_be16(udp + 6, 0);
  uint32_t sum = pseudo_sum(src, dst, 17, 8 + len);
  sum = csum_add(sum, udp, 8);
  sum = csum_add(sum, data, len);
  uint16_t c = csum_fold(sum);
  kz_put_be16(udp + 6, c ? c : 0xffff);
  uint16_t id = sim->ip_id++;
  if (20 + 8 + len <= MTU) {
    frame(sim, src, dst, 17, id, 0x4000 /* DF */, udp, 8, data, len);
    return;
  }
  /* IPv4 fragments of 1480 bytes (a multiple of 8) of the UDP datagram;
   * the first carries the UDP header. */
  size_t total = 8 + len, off = 0;
  while (off < total) {
    size_t chunk = total - off > MTU - 20 ? MTU - 20 : total - off;
    bool more = off + chunk < total;
    uint16_t frag = (uint16_t)((more ? 0x2000 : 0) | (off / 8));
    if (off == 0) frame(sim, src, dst, 17, id, frag, udp, 8, data, chunk - 8);
    else frame(sim, src, dst, 17, id, frag, NULL, 0, data + off - 8, chunk);
    off += chunk;
  }
}

static void tcp_one(struct kz_sim *sim, const struct kz_addr *src, const struct kz_addr *dst,
                    uint32_t seq, uint32_t ack, uint8_t flags, const uint8_t *data, size_t len) {
  uint8_t tcp[20] = {0};
  kz_put_be16(tcp, src->port);
  kz_put_be16(tcp + 2, dst->port);
  kz_put_be32(tcp + 4, seq);
  kz_put_be32(tcp + 8, (flags & KZ_SIM_TCP_ACK) ? ack : 0);
  tcp[12] = 5 << 4;
  tcp[13] = flags;
  kz_put_be16(tcp + 14, 65535);
  uint32_t sum = pseudo_sum(src, dst, 6, 20 + len);
  sum = csum_add(sum, tcp, 20);
  sum = csum_add(sum, data, len);
  kz_put_be16(tcp + 16, csum_fold(sum));
  frame(sim, src, dst, 6, sim->ip_id++, 0x4000, tcp, 20, data, len);
}

void kz_sim_pcap_tcp(struct kz_sim *sim, const struct kz_addr *src, const struct kz_addr *dst,
                     uint32_t seq, uint32_t ack, uint8_t flags, const uint8_t *data, size_t len) {
  if (!sim->pcap_file) return;
  if (len <= MSS) {
    tcp_one(sim, src, dst, seq, ack, flags, data, len);
    return;
  }
  /* One write larger than a segment: ACK-only segments, PSH on the last. */
  for (size_t off = 0; off < len; off += MSS) {
    size_t n = len - off > MSS ? MSS : len - off;
    uint8_t f = off + n < len ? (uint8_t)(flags & ~KZ_SIM_TCP_PSH) : flags;
    tcp_one(sim, src, dst, seq + (uint32_t)off, ack, f, data + off, n);
  }
}
