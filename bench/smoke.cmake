# Runs `ndshm-bench --quick --json OUT` and checks that it succeeded and that OUT is valid JSON
# with the expected top-level members. Timing is never asserted: benchmarks are not tests.
execute_process(COMMAND ${BENCH} --quick --json ${OUT} --md ${OUT}.md
  RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ndshm-bench --quick failed: ${rc}")
endif()
file(READ ${OUT} json)
foreach(key rows references targets syscalls starvation publish_readers)
  string(JSON _t ERROR_VARIABLE err TYPE "${json}" ${key})
  if(err)
    message(FATAL_ERROR "invalid JSON or missing '${key}': ${err}")
  endif()
endforeach()
string(JSON nrows LENGTH "${json}" rows)
if(nrows LESS 10)
  message(FATAL_ERROR "only ${nrows} rows")
endif()
message(STATUS "ndshm-bench --quick: ${nrows} rows, valid JSON")
