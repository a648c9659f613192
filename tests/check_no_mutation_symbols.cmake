# ctest ShippedBuild.HasNoMutationSymbols (tests/CMakeLists.txt): the shipped build holds no
# mutation switch (reference/numerics/mutation.h). Fails if `nm -C` finds set_mutation,
# active_mutation, mutation_name or mutation_free::mutated in the zimage CLI (SHIPPED_CLI) or libzimage_ref.a
# (SHIPPED_LIB), i.e. if someone put the runtime switch back into the shipped library. Where the
# mutants library is built (MUTANTS_LIB, may be empty), it must hold them: the positive control
# that nm and the pattern see the symbols when they are there.
#   cmake -DNM=nm -DSHIPPED_CLI=bin/zimage -DSHIPPED_LIB=libzimage_ref.a [-DMUTANTS_LIB=...] -P this
# zimage::mutation_free::mutated: a source compiled once for both libraries (zimage_ref_shared)
# that reached a mutation branch (numerics/mutation.h); it fails to link where it is used, and this
# finds it where it is not.
set(pattern "zimage::(set_mutation|active_mutation|mutation_name|mutation_free::mutated)\\(")
if(NOT NM)
  message(FATAL_ERROR "no nm (CMAKE_NM is empty)")
endif()

function(mutation_symbols file out)
  if(NOT EXISTS "${file}")
    message(FATAL_ERROR "${file} does not exist (build it first)")
  endif()
  execute_process(COMMAND ${NM} -C "${file}" OUTPUT_VARIABLE syms ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} -C ${file} failed (${rc}): ${err}")
  endif()
  string(LENGTH "${syms}" n)
  if(n LESS 100)
    message(FATAL_ERROR "${NM} -C ${file} listed almost nothing (${n} characters): cannot judge it")
  endif()
  # The bare pattern first: matching it with the line around it ([^\n]* on both sides) costs a scan
  # to the line's end at every character, 49 s on clang's 14 MB listing; the lines are taken only
  # where there are hits, for the message.
  string(REGEX MATCHALL "${pattern}" bare "${syms}")
  set(hits "")
  if(bare)
    string(REGEX MATCHALL "[^\n]*${pattern}[^\n]*" hits "${syms}")
  endif()
  set(${out} "${hits}" PARENT_SCOPE)
endfunction()

set(failed OFF)
foreach(f "${SHIPPED_CLI}" "${SHIPPED_LIB}")
  mutation_symbols("${f}" hits)
  list(LENGTH hits n)
  if(n GREATER 0)
    string(REPLACE ";" "\n  " lines "${hits}")
    message(SEND_ERROR "${f}: ${n} mutation symbol(s), the shipped build must have none:\n  ${lines}")
    set(failed ON)
  else()
    message(STATUS "${f}: no mutation symbols")
  endif()
endforeach()
if(MUTANTS_LIB)
  mutation_symbols("${MUTANTS_LIB}" hits)
  foreach(sym set_mutation active_mutation mutation_name)
    if(NOT hits MATCHES "zimage::${sym}\\(")
      message(SEND_ERROR "${MUTANTS_LIB}: no zimage::${sym} (positive control: the mutants build must define it)")
      set(failed ON)
    endif()
  endforeach()
  if(NOT failed)
    message(STATUS "${MUTANTS_LIB}: defines set_mutation, active_mutation and mutation_name (positive control)")
  endif()
endif()
if(failed)
  message(FATAL_ERROR "mutation symbols check failed")
endif()
