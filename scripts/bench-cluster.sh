#!/usr/bin/env bash
# The 4-process cluster of the README, measured by `cairn bench chain`: one light-load run
# (latency) and one saturating run (throughput), at the block time given (default 50 ms).
#
#   ./scripts/bench-cluster.sh [BLOCK_TIME_MS] [SATURATING_TXS]
#
# Uses the release binary (cargo build --release -p cairn-cli). Every validator, the load
# generator and the event watcher share this machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
block_time_ms=${1:-50}
txs=${2:-60000}
bin=${CAIRN_BIN:-${CARGO_TARGET_DIR:-target}/release/cairn}
home=$(mktemp -d /tmp/cairn-cluster.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$home"
}
trap cleanup EXIT

"$bin" devnet --home "$home" --validators 4 --init-only --compute-provers 0 --compute-providers 0 \
  --block-time-ms "$block_time_ms" >/dev/null
for i in 0 1 2 3; do
  "$bin" node --home "$home" --config "$home/node-$i.toml" >"$home/node-$i.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 100); do
  if "$bin" --home "$home" --node http://127.0.0.1:7700 status --json 2>/dev/null |
    grep -q '"height": *[1-9]'; then break; fi
  sleep 0.2
done
also=(--also http://127.0.0.1:7701 --also http://127.0.0.1:7702 --also http://127.0.0.1:7703)
echo "# light load: 100 tx/s, one transfer per request, spread over the 4 nodes"
"$bin" --home "$home" --node http://127.0.0.1:7700 bench chain --json \
  --txs 1000 --senders 100 --threads 4 --rate 100 "${also[@]}"
echo "# saturating: $txs transfers in batches of 500 from 4 threads, spread over the 4 nodes"
"$bin" --home "$home" --node http://127.0.0.1:7700 bench chain --json \
  --txs "$txs" --senders 2000 --threads 4 --batch 500 "${also[@]}"
