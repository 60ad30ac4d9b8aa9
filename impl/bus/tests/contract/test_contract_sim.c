/* test_contract_sim.c — runs the bus contract against the simulator world (wire backend + broker model). */
#include "contract_world.h"
#include "kz_test.h"

int main(void) {
  return kz_run_suite(kz_bus_contract_suite("bus_contract_sim",
                                            &kz_contract_world_sim));
}
