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

# kz_add_fuzzer(NAME SOURCE file.c [more.c] LIBS x y CORPUS dir [SHARED_CORPUS sub/dir ...])
# With KZ_FUZZ: a libFuzzer binary.  Without: the same target linked with
# a small main that replays every file of the seed corpus, registered as a
# ctest (label "fuzz-seeds") so the seeds run under the sanitizers in CI.
# SHARED_CORPUS names folders of ../shared/corpora (test material written
# by others, read in place, never copied into the tree) used as further
# seeds when they are there; a missing one is left out with a message.
function(kz_add_fuzzer name)
  cmake_parse_arguments(F "" "CORPUS" "SOURCE;LIBS;SHARED_CORPUS" ${ARGN})
  if(F_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "kz_add_fuzzer(${name}): unknown arguments ${F_UNPARSED_ARGUMENTS}")
  endif()
  set(seeds ${F_CORPUS})
  foreach(sub IN LISTS F_SHARED_CORPUS)
    get_filename_component(dir "${CMAKE_SOURCE_DIR}/../shared/corpora/${sub}" ABSOLUTE)
    if(IS_DIRECTORY "${dir}")
      list(APPEND seeds "${dir}")
    else()
      message(STATUS "${name}: shared corpus ${sub} is absent (../shared/corpora); its seeds are left out")
    endif()
  endforeach()
  if(KZ_FUZZ)
    add_executable(${name} ${F_SOURCE})
    target_link_libraries(${name} PRIVATE ${F_LIBS})
    target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/cmake) # kz_fuzz.h
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    string(REPLACE ";" "|" seed_list "${seeds}")
    set_property(GLOBAL APPEND PROPERTY KZ_FUZZERS "${name}|${seed_list}")
  else()
    add_executable(${name} ${F_SOURCE} ${CMAKE_SOURCE_DIR}/cmake/fuzz_replay_main.c)
    target_link_libraries(${name} PRIVATE ${F_LIBS})
    target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/cmake) # kz_fuzz.h
    add_test(NAME ${name}_seeds COMMAND ${name} ${seeds})
    set_tests_properties(${name}_seeds PROPERTIES LABELS "fuzz-seeds" TIMEOUT 300)
  endif()
endfunction()
