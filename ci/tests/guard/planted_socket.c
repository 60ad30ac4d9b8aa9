/* planted_socket.c — a planted violation: opening a socket and sleeping outside the drivers. */
#include <sys/socket.h>
#include <unistd.h>

int kz_planted_open(void) {
  sleep(1);
  return socket(AF_INET, SOCK_DGRAM, 0);
}
