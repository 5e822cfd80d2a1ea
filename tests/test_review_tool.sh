#!/usr/bin/env bash
# test_review_tool.sh PLAIT — cases a review of the `plait` tool found, each a defect
# that failed here first.  Every wait is bounded (timeout); a failure says what differed.
#   bash tests/test_review_tool.sh PLAIT_BINARY
set -uo pipefail
tool=${1:?usage: test_review_tool.sh PATH_TO_PLAIT}
tool="$(cd "$(dirname "$tool")" && pwd)/$(basename "$tool")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok   $*"; }

# ---- bench: a program's output beyond what the tool keeps (1 MiB) -----------------------
# The program prints one figure, 1000.  The tool kept the first 1 MiB (less a read),
# dropped the reads that did not fit, yet appended a later, smaller read (the last one)
# right after the cut: the cut figure line "... ns_per_op 1" and the tail "99\n" made a
# figure of 199, printed as measured.  Only whole lines of the output are figures.
mkdir "$tmp/big"
cat >"$tmp/big/bench_context" <<'PY'
#!/usr/bin/env python3
import sys
figure = "switch plait-context ns_per_op 1000\n"
cut = 255 * 4096                  # what the tool keeps of reads of 4096 bytes
pre = cut - 32                    # the figure line straddles the cut after its "1"
head = ("#" * 99 + "\n") * (pre // 100)
head += "#" * (pre - len(head) - 1) + "\n"
total = cut + 4 * 4096 + 3        # a last read of 3 bytes: "99\n"
tail_len = total - pre - len(figure)
out = head + figure + "#" + "x" * (tail_len - 5) + " 99\n"
assert len(out) == total
sys.stdout.write(out)
PY
chmod +x "$tmp/big/bench_context"
if command -v python3 >/dev/null; then
    PLAIT_BENCH_DIR="$tmp/big" timeout 60 "$tool" bench --quick context \
        >"$tmp/out" 2>"$tmp/err"
    # (exit 1: its peer, peer_ucontext_switch, is not there)
    what="bench, a program whose output passes 1 MiB"
    if grep -Eq '^switch +plait-context +ns_per_op +(199|1)\.' "$tmp/out"; then
        fail "$what: a figure it never printed: $(grep '^switch' "$tmp/out")"
    elif grep -Eq '^switch +plait-context +ns_per_op ' "$tmp/out" &&
         ! grep -Eq '^switch +plait-context +ns_per_op +1000 ' "$tmp/out"; then
        fail "$what: $(grep '^switch' "$tmp/out")"
    else
        ok "$what: no figure made of two lines"
    fi
fi

[ "$failures" = 0 ] && echo "test_review_tool: ok"
exit $((failures > 0))
