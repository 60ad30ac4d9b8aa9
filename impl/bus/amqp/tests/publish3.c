/* publish3.c — test helper: publishes messages to a RabbitMQ node with bare librabbitmq-c (usage: PORT EXCHANGE KEY BODY [KEY BODY]...). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

int main(int argc, char **argv) {
  if (argc < 5 || (argc - 3) % 2) {
    fprintf(stderr, "usage: %s PORT EXCHANGE KEY BODY [KEY BODY]...\n", argv[0]);
    return 2;
  }
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t *s = amqp_tcp_socket_new(c);
  if (!s || amqp_socket_open(s, "127.0.0.1", atoi(argv[1])) != AMQP_STATUS_OK) {
    fprintf(stderr, "publish3: cannot connect to port %s\n", argv[1]);
    return 1;
  }
  amqp_rpc_reply_t r = amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
                                  "guest", "guest");
  if (r.reply_type != AMQP_RESPONSE_NORMAL) return 1;
  amqp_channel_open(c, 1);
  if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) return 1;
  /* Confirms make the exit mean "the broker routed them". */
  amqp_confirm_select(c, 1);
  if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) return 1;
  int n = 0;
  for (int i = 3; i + 1 < argc; i += 2, n++) {
    amqp_basic_properties_t p = {._flags = AMQP_BASIC_CONTENT_TYPE_FLAG,
                                 .content_type = amqp_cstring_bytes("application/json")};
    if (amqp_basic_publish(c, 1, amqp_cstring_bytes(argv[2]),
                           amqp_cstring_bytes(argv[i]), 0, 0, &p,
                           amqp_cstring_bytes(argv[i + 1])) != AMQP_STATUS_OK)
      return 1;
  }
  /* Wait for the acks (multiple acks may cover several). */
  uint64_t acked = 0;
  while (acked < (uint64_t)n) {
    amqp_frame_t f;
    if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK) return 1;
    if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
      amqp_basic_ack_t *a = f.payload.method.decoded;
      acked = a->delivery_tag;
    } else if (f.frame_type == AMQP_FRAME_METHOD) {
      fprintf(stderr, "publish3: unexpected method 0x%08x\n", f.payload.method.id);
      return 1;
    }
  }
  amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);
  return 0;
}
