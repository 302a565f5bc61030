#!/usr/bin/env bash
# A CPU and disk hog, for proving that Cairn's verdicts do not depend on how busy the
# machine is (issue: fair audits). Starts one busy loop per core and a writer that
# rewrites a file with fsync in a loop, until killed (Ctrl-C, or `kill -- -PGID`).
#
#   scripts/hog.sh [DIR]        DIR holds the writer's file (default: a temporary dir)
#   HOG_CPUS=N HOG_WRITE_MB=M   override the busy loops (default: nproc) and the file size
set -euo pipefail
dir="${1:-$(mktemp -d)}"
cpus="${HOG_CPUS:-$(nproc)}"
write_mb="${HOG_WRITE_MB:-256}"
mkdir -p "$dir"
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  rm -f "$dir/hog.bin"
}
trap cleanup EXIT INT TERM
for _ in $(seq "$cpus"); do
  (while :; do :; done) &
  pids+=($!)
done
(while :; do
  dd if=/dev/zero of="$dir/hog.bin" bs=1M count="$write_mb" conv=fsync status=none
done) &
pids+=($!)
echo "hog: $cpus busy loop(s) and a ${write_mb} MiB fsync writer in $dir (pids ${pids[*]})" >&2
wait
