# The tool's exit codes, which scripts rely on: 2 for usage errors, 0 for help.
separate_arguments(emulator UNIX_COMMAND "${EMULATOR}") # empty natively
foreach(args "frobnicate" "--bogus" "")
  separate_arguments(argv UNIX_COMMAND "${args}")
  execute_process(COMMAND ${emulator} ${TOOL} ${argv} RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  if(NOT rc EQUAL 2)
    message(FATAL_ERROR "plait ${args}: exit ${rc}, expected 2")
  endif()
  if(NOT err MATCHES "usage: plait")
    message(FATAL_ERROR "plait ${args}: no usage text on stderr")
  endif()
endforeach()
execute_process(COMMAND ${emulator} ${TOOL} help RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out MATCHES "tour")
  message(FATAL_ERROR "plait help: exit ${rc}")
endif()
execute_process(COMMAND ${emulator} ${TOOL} help help RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out MATCHES "tour")
  message(FATAL_ERROR "plait help help: exit ${rc}")
endif()
# Every command checks all its arguments before it does anything, and its usage error
# names the argument that is wrong, even beside --help (`plait version --help extra`
# blamed '--help'; `plait help tour --help` said "one command at a time"; `plait bench
# --help --bogus` exited 0 where `plait compare --help --bogus` exited 2).
foreach(case "version --help extra|'extra'" "tour --help --bogus|'--bogus'"
             "help tour --help extra|'extra'" "help compare tour|'tour'"
             "help help extra|'extra'" "compare --help --bogus|'--bogus'"
             "bench --help --bogus|'--bogus'" "bench --help nosuchbench|'nosuchbench'"
             "tour -- extra|'extra'" "compare -- --quick|argument '--quick'"
             "version -- --help|argument '--help'" "version - |'-'")
  string(REPLACE "|" ";" case "${case}")
  list(GET case 0 args)
  list(GET case 1 named)
  separate_arguments(argv UNIX_COMMAND "${args}")
  execute_process(COMMAND ${emulator} ${TOOL} ${argv} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 2 OR NOT err MATCHES "${named}" OR NOT out STREQUAL "")
    message(FATAL_ERROR "plait ${args}: exit ${rc}, expected 2 and a message naming ${named}; "
                        "stderr: ${err}")
  endif()
endforeach()
# --help may be repeated, and `--` ends the options, the same for every command (tour
# and compare called both an unknown option, bench took them).
foreach(args "tour --help --help" "help tour --help" "help -- tour" "version --help --"
             "compare --help --" "tour --help --" "bench --help --" "help help --help")
  separate_arguments(argv UNIX_COMMAND "${args}")
  execute_process(COMMAND ${emulator} ${TOOL} ${argv} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "usage: plait")
    message(FATAL_ERROR "plait ${args}: exit ${rc}, expected 0 and the help; stderr: ${err}")
  endif()
endforeach()
# Output that cannot be written is a failure (these once exited 0).
if(EXISTS /dev/full)
  foreach(args "version" "help" "bench --list")
    separate_arguments(argv UNIX_COMMAND "${args}")
    execute_process(COMMAND ${emulator} ${TOOL} ${argv} RESULT_VARIABLE rc OUTPUT_FILE /dev/full
                    ERROR_VARIABLE err)
    if(NOT rc EQUAL 3 OR NOT err MATCHES "cannot write")
      message(FATAL_ERROR "plait ${args} > /dev/full: exit ${rc}, expected 3 and a message")
    endif()
  endforeach()
endif()
execute_process(COMMAND ${emulator} ${TOOL} version RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out MATCHES "^plait [0-9]+\\.[0-9]+\\.[0-9]+")
  message(FATAL_ERROR "plait version: exit ${rc}, output ${out}")
endif()
