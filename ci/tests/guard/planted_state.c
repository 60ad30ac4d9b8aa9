/* planted_state.c — a planted violation: mutable file-scope and function-static state. */
static int kz_planted_counter;

int kz_planted_next(void) {
  static int calls;
  calls++;
  return ++kz_planted_counter + calls;
}
