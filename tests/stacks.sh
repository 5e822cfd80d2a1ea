# tests/stacks.sh — sourced by the shell tests: print_stacks PID prints where each thread
# of a process is, for the log of a run that hangs: its name, the kernel's wait channel
# and system call, and with gdb (scripts/test.sh installs it) every thread's stack and
# locals.  Bounded: gdb gets 60 s.  Never fails.
print_stacks() {
    local pid=$1 task
    echo "---- process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
    echo "--- its threads (name, wait channel, system call):"
    for task in /proc/"$pid"/task/*; do
        echo "$(cat "$task/comm") $(cat "$task/wchan") $(cut -d' ' -f1 "$task/syscall")"
    done 2>/dev/null
    command -v gdb >/dev/null &&
        timeout 60 gdb -q -batch -p "$pid" -ex "thread apply all bt full" 2>&1 |
        grep -v '^\[New LWP\|^warning:'
    return 0
}
