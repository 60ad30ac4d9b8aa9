# cmake/KzTest.cmake — helpers to declare Check suites and libFuzzer targets the same way everywhere.

# kz_add_check_test(NAME SOURCES a.c b.c LIBS x y LABELS l1 l2 [TIMEOUT s])
# Builds one Check suite and registers it with ctest.  Every suite links
# kz_testutil (leak check fixture, helpers).
function(kz_add_check_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE kz_testutil ${T_LIBS} PkgConfig::CHECK)
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES
    TIMEOUT ${T_TIMEOUT}
    LABELS "unit;${T_LABELS}"
    ENVIRONMENT "CK_FORK=yes;CK_DEFAULT_TIMEOUT=30;KZ_SOURCE_DIR=${CMAKE_SOURCE_DIR};KZ_SHARED_DIR=${CMAKE_SOURCE_DIR}/../shared")
endfunction()

# kz_add_fuzzer(NAME SOURCE file.c LIBS x y CORPUS dir)
# With KZ_FUZZ: a libFuzzer binary.  Without: the same target linked with
# a small main that replays every file of the seed corpus, registered as a
# ctest (label "fuzz-seeds") so the seeds run under the sanitizers in CI.
function(kz_add_fuzzer name)
  cmake_parse_arguments(F "" "SOURCE;CORPUS" "LIBS" ${ARGN})
  if(KZ_FUZZ)
    add_executable(${name} ${F_SOURCE})
    target_link_libraries(${name} PRIVATE ${F_LIBS})
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    set_property(GLOBAL APPEND PROPERTY KZ_FUZZERS "${name}|${F_CORPUS}")
  else()
    add_executable(${name} ${F_SOURCE} ${CMAKE_SOURCE_DIR}/cmake/fuzz_replay_main.c)
    target_link_libraries(${name} PRIVATE ${F_LIBS})
    add_test(NAME ${name}_seeds COMMAND ${name} ${F_CORPUS})
    set_tests_properties(${name}_seeds PROPERTIES LABELS "fuzz-seeds" TIMEOUT 300)
  endif()
endfunction()
