# The tour runs every example to success: it says so and exits 0.  (The tests set
# PASS_REGULAR_EXPRESSION, with which ctest ignores the exit status: a tour that exited
# non-zero after its summary, or with a LeakSanitizer report's 23, passed; session 51's
# audit of the tests.)  EXPECT: what its output must match; FDS (optional): run under
# that limit on descriptors (`ulimit -n`).
separate_arguments(emulator UNIX_COMMAND "${EMULATOR}") # empty natively
set(cmd ${emulator} ${TOOL} tour)
if(FDS)
  set(cmd bash -c "ulimit -n ${FDS} && exec \"$@\"" tour ${cmd})
endif()
execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "plait tour: exit ${rc}, expected 0")
endif()
if(NOT "${out}${err}" MATCHES "${EXPECT}")
  message(FATAL_ERROR "plait tour: its output does not match '${EXPECT}'")
endif()
