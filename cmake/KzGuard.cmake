# cmake/KzGuard.cmake — fails the build when sans-I/O code calls the OS or keeps mutable file-scope state.

# kz_guard(target): after `target` (a static library of role/protocol code)
# is built, ci/guard inspects its object files; a violation fails the build
# and keeps failing until fixed (the stamp is only written on success).
function(kz_guard target)
  set(stamp ${CMAKE_CURRENT_BINARY_DIR}/${target}.guard.stamp)
  add_custom_command(OUTPUT ${stamp}
    COMMAND ${CMAKE_SOURCE_DIR}/ci/guard --allow ${CMAKE_SOURCE_DIR}/ci/guard.allow $<TARGET_FILE:${target}>
    COMMAND ${CMAKE_COMMAND} -E touch ${stamp}
    DEPENDS ${target} ${CMAKE_SOURCE_DIR}/ci/guard ${CMAKE_SOURCE_DIR}/ci/guard.allow
    COMMENT "Sans-I/O guard: ${target}"
    VERBATIM)
  add_custom_target(${target}_guard ALL DEPENDS ${stamp})
endfunction()
