# cmake -DPROGRAM=<zimage_golden_weights> -DGOLDEN=<golden dir> -P cmake/golden_weights.cmake
#
# Writes the synthetic-weight files of golden/models/ that git does not keep
# (tools/golden/golden_weights.cpp) and checks every one against golden/weights/SHA256SUMS,
# the digests of the files diffusers wrote (tools/golden/split_weights.py). A file that does
# not match is written again once (--force: a stale or damaged copy); if it still differs the
# build stops, naming it: the synthetic generator no longer reproduces diffusers' file.
# docs/goldens.md, "Materialized weights".
function(golden_weights_mismatches out)
  file(STRINGS "${GOLDEN}/weights/SHA256SUMS" lines)
  set(bad "")
  foreach(line IN LISTS lines)
    if(NOT line MATCHES "^([0-9a-f]+)  (.+)$")
      message(FATAL_ERROR "${GOLDEN}/weights/SHA256SUMS: bad line '${line}'")
    endif()
    set(want "${CMAKE_MATCH_1}")
    set(path "${CMAKE_MATCH_2}")
    if(EXISTS "${GOLDEN}/${path}")
      file(SHA256 "${GOLDEN}/${path}" got)
    else()
      set(got "missing")
    endif()
    if(NOT got STREQUAL want)
      list(APPEND bad "golden/${path}: sha256 ${got}, diffusers wrote ${want}")
    endif()
  endforeach()
  set(${out} "${bad}" PARENT_SCOPE)
endfunction()

foreach(var PROGRAM GOLDEN)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "golden_weights.cmake: -D${var}= is required")
  endif()
endforeach()
execute_process(COMMAND "${PROGRAM}" "${GOLDEN}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "golden_weights.cmake: ${PROGRAM} failed (exit ${rc})")
endif()
golden_weights_mismatches(bad)
if(bad)
  execute_process(COMMAND "${PROGRAM}" "${GOLDEN}" --force RESULT_VARIABLE rc)
  golden_weights_mismatches(bad)
  if(bad OR NOT rc EQUAL 0)
    list(JOIN bad "\n  " lines)
    message(FATAL_ERROR "golden weights differ from the files diffusers wrote:\n  ${lines}")
  endif()
endif()
