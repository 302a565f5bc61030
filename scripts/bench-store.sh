#!/usr/bin/env bash
# End-to-end storage figures of docs/benchmarks.md: a devnet with six in-process storage
# providers, then `cairn bench store` (put, get with every shard, get with m data shards
# lost), encrypted and public.
#
#   ./scripts/bench-store.sh [SIZE_MIB]
#
# SHARD_IO=cached runs the providers through the page cache (default: direct).
# Uses the release binary (cargo build --release -p cairn-cli). Client, providers and the
# validator share this machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
bin=${CAIRN_BIN:-${CARGO_TARGET_DIR:-target}/release/cairn}
home=$(mktemp -d /tmp/cairn-bench-store.XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$home"
}
trap cleanup EXIT

"$bin" devnet --home "$home" --block-time-ms 200 --compute-provers 0 --compute-providers 0 \
  --no-explorer --no-gateway --shard-io "${SHARD_IO:-direct}" >"$home/devnet.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  if curl -sf http://127.0.0.1:7905/v1/provider >/dev/null; then break; fi
  sleep 0.2
done
"$bin" --home "$home" bench store --size-mib "$size_mib" --json
"$bin" --home "$home" bench store --size-mib "$size_mib" --public --json
