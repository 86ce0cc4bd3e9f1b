# cmake/autoglm_arm.cmake: per-file AArch64 extension flags for kernel sources (src/kernels/cpu/cpu_features_arm.h
# says when to use them rather than per-function attributes, and what such a file may include).
#
# autoglm_arm_kernel_flags(<target>): every source of <target> named <name>_arm_<ext>.cpp, ext one of dotprod,
# i8mm, fp16, bf16, is compiled with -march=armv8.2-a+<ext> (i8mm: +dotprod+i8mm, as its kernels use sdot for
# tails) when building for aarch64, and not compiled at all for other processors. armv8.2-a is the lowest base
# for which GCC 12's arm_neon.h offers these intrinsics (and every core that has one of them implements v8.2);
# its kernels run only after the matching cpu_has_neon_*() check. Call it from the folder that defines <target>
# (source properties are per directory).
function(autoglm_arm_kernel_flags target)
  get_target_property(sources ${target} SOURCES)
  set(is_arm64 OFF)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
    set(is_arm64 ON)
  endif()
  foreach(src IN LISTS sources)
    get_filename_component(stem "${src}" NAME_WE)
    if(NOT stem MATCHES "_arm_(dotprod|i8mm|fp16|bf16)$")
      continue()
    endif()
    set(ext "+${CMAKE_MATCH_1}")
    if(CMAKE_MATCH_1 STREQUAL "i8mm")
      set(ext "+dotprod+i8mm")
    endif()
    if(is_arm64)
      set_property(SOURCE "${src}" APPEND PROPERTY COMPILE_OPTIONS "-march=armv8.2-a${ext}")
    else()
      set_property(SOURCE "${src}" PROPERTY HEADER_FILE_ONLY ON)
    endif()
  endforeach()
endfunction()
