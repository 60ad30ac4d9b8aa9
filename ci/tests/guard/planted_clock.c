/* planted_clock.c — a planted violation: protocol code reading the OS clock directly. */
#include <time.h>

long kz_planted_elapsed(void) { return (long)time(NULL); }
