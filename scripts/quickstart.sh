#!/usr/bin/env bash
# Follows README.md's quickstart as a new user would: every command in the ```sh blocks
# between "## Quickstart" and "## Crates", in the README's order, on a new home and free
# ports, checking what each one printed or did. A command in the README that this script
# does not know fails it, so the two cannot drift apart.
#
#   scripts/quickstart.sh                  cairn from CAIRN_BIN, else target/debug/cairn
#   QUICKSTART_KEEP=1 scripts/quickstart.sh   keep the work directory (printed) afterwards
#   QUICKSTART_VERBOSE=1 scripts/quickstart.sh  print what each command printed
#
# What differs from typing the README by hand, and why:
# - `cargo run --release -p cairn-cli -- devnet` runs the cairn already built (CI builds
#   it once), with every port the devnet opens taken from a free range, not 7700..7977,
#   so that it runs beside another devnet; commands that name a default port get the
#   devnet's. The 4-process cluster gets ports of its own the same way.
# - `./scripts/test.sh` is not run: this script runs inside it.
# - `cairn bench store --size-mib 1024` stores 64 MiB (CI's disk and time).
# - Placeholders take what earlier steps printed: <alice's address>, <hash>, <blob id>,
#   <public blob id>.
# - Where the README says "Ctrl-C stops the devnet cleanly", the script checks it: a second
#   devnet on the same home is refused naming the first's pid, SIGINT stops it with exit 0
#   and no error or panic line, and starting it again resumes from disk.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${CAIRN_BIN:-$root/target/debug/cairn}"
[ -x "$bin" ] || { echo "quickstart: no cairn at $bin (cargo build --workspace, or set CAIRN_BIN)" >&2; exit 1; }
command -v curl >/dev/null || { echo "quickstart: needs curl" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/cairn-quickstart.XXXXXX")"
export CAIRN_HOME="$work/home"
export CAIRN_PASSPHRASE="quickstart passphrase"
unset CAIRN_NODE
mkdir -p "$work/bin"
ln -s "$bin" "$work/bin/cairn"
ln -s "$root/examples" "$work/examples"
export PATH="$work/bin:$PATH"
cd "$work"

# --- ports: a range of 60 in which nothing listens -----------------------------------------
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
range_free() {
  local p
  for ((p = $1; p < $1 + 60; p++)); do port_busy "$p" && return 1; done
  return 0
}
base="${QUICKSTART_PORT_BASE:-}"
if [ -z "$base" ]; then
  for _ in $(seq 50); do
    # Below the kernel's ephemeral range (32768 and up), where any process's outgoing
    # connection may take a port after it was seen free.
    base=$((20000 + (RANDOM % 120) * 100))
    range_free "$base" && break
    base=""
  done
  [ -n "$base" ] || { echo "quickstart: no free port range found" >&2; exit 1; }
fi
API=$base P2P=$((base + 1)) EXPLORER=$((base + 10)) GATEWAY=$((base + 11))
STORAGE=$((base + 20)) MARKET=$((base + 40)) PROVER=$((base + 45))
C4_API=$((base + 50)) C4_P2P=$((base + 55))
devnet_flags=(--api-port "$API" --p2p-base-port "$P2P" --explorer-port "$EXPLORER"
  --gateway-port "$GATEWAY" --storage-base-port "$STORAGE"
  --compute-provider-base-port "$MARKET" --compute-prover-base-port "$PROVER")

# --- bookkeeping ------------------------------------------------------------------------------
devnet_pid="" cluster_pids=() step=0
cleanup() {
  local code=$?
  [ -n "$devnet_pid" ] && kill -INT "$devnet_pid" 2>/dev/null && wait "$devnet_pid" 2>/dev/null
  for p in "${cluster_pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${cluster_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${QUICKSTART_KEEP:-}" = 1 ] || [ "$code" != 0 ]; then
    echo "quickstart: work directory kept: $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
fail() {
  echo "quickstart: FAILED at step $step: $*" >&2
  [ -f "$work/out" ] && { echo "--- its output:" >&2; tail -n 40 "$work/out" >&2; }
  [ -f "$work/devnet.log" ] && { echo "--- devnet log (end):" >&2; tail -n 30 "$work/devnet.log" >&2; }
  exit 1
}
# Runs one (substituted) command line with bash, output in $work/out; fails on non-zero.
sh_run() {
  bash -o pipefail -c "$1" >"$work/out" 2>&1 || fail "exit $? from: $1"
}
expect() { grep -qE -- "$1" "$work/out" || fail "expected /$1/ in the output"; }
wait_for() { # seconds description command...
  local until=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $until ] || fail "timed out after ${until}s waiting for $what"
    sleep 0.5
  done
}
height() { cairn status --json 2>/dev/null | sed -nE 's/.*"height": *([0-9]+).*/\1/p' | head -1; }
at_height() { local h; h="$(height)"; [ -n "$h" ] && [ "$h" -ge "$1" ]; }

start_devnet() {
  cairn devnet "${devnet_flags[@]}" >>"$work/devnet.log" 2>&1 &
  devnet_pid=$!
  wait_for 180 "the devnet's first block" at_height 1
  wait_for 60 "the devnet's providers" bash -c \
    "curl -sf http://127.0.0.1:$STORAGE/v1/provider && curl -sf http://127.0.0.1:$MARKET/v1/status && curl -sf http://127.0.0.1:$EXPLORER/api/v1/summary"
}

# Where the devnet's ports and the earlier steps' outputs go into a README line.
ALICE="" TX="" BLOB="" PUBLIC_BLOB=""
substitute() {
  local c=$1
  c="${c//localhost:7700/localhost:$API}"
  c="${c//127.0.0.1:7950/127.0.0.1:$MARKET}"
  c="${c//127.0.0.1:7790/127.0.0.1:$GATEWAY}"
  c="${c//localhost:7780/localhost:$EXPLORER}"
  c="${c//127.0.0.1:7700/127.0.0.1:$C4_API}"
  c="${c//\/tmp\/c4/$work/c4}"
  c="${c//<alice\'s address>/$ALICE}"
  c="${c//<hash>/$TX}"
  c="${c//<public blob id>/$PUBLIC_BLOB}"
  c="${c//<blob id>/$BLOB}"
  printf '%s' "$c"
}

# --- the README's commands, in its order ------------------------------------------------------
readme_commands() {
  awk '
    /^## Quickstart/ { on = 1 } /^## Crates/ { on = 0 }
    on && /^```sh$/ { block = 1; next }
    block && /^```$/ { block = 0; next }
    on && block { print }
  ' "$root/README.md" | sed -E 's/[[:space:]]+#[[:space:]].*$//; s/[[:space:]]+$//' | grep -v '^#' | grep -v '^$'
}

step_for() {
  local readme=$1 cmd
  cmd="$(substitute "$readme")"
  case "$readme" in
  "cargo run --release -p cairn-cli -- devnet")
    start_devnet ;;
  "./scripts/test.sh")
    echo "    (not run: this script runs inside the test suite)" ;;
  "cairn status")
    sh_run "$cmd"; expect "height" ;;
  "cairn keys new alice")
    sh_run "$cmd"; expect "cairn1" ;;
  "cairn keys show alice")
    sh_run "$cmd"
    ALICE="$(grep -oE 'cairn1[02-9ac-hj-np-z]{58}' "$work/out" | head -1)"
    [ -n "$ALICE" ] || fail "no address in the output" ;;
  "cairn account transfer <alice's address> \"12.5 CRN\"")
    sh_run "$cmd"
    TX="$(sed -nE 's/^hash: ([0-9a-f]{64})$/\1/p' "$work/out" | head -1)"
    [ -n "$TX" ] || fail "no transaction hash in the output" ;;
  "cairn account transfer alice \"500 uCRN\"")
    sh_run "$cmd" ;;
  "cairn account show alice --json")
    sh_run "$cmd"; expect '"balance": "12500500"' ;;
  "cairn tx show <hash>")
    sh_run "$cmd"; expect "$TX" ;;
  "curl -N localhost:7700/v1/events")
    # A stream that never ends by itself: read five seconds of it.
    bash -c "$cmd --max-time 5" >"$work/out" 2>/dev/null || [ $? = 28 ] || fail "curl failed"
    expect "^data: " ;;
  "curl localhost:7700/v1/openapi.json")
    sh_run "$cmd -sf"; expect '"openapi"' ;;
  "cairn bench chain --txs 5000 --senders 200 --batch 100" | "cairn bench popw")
    sh_run "$cmd" ;;
  "cairn manifest validate examples/web-process.yaml")
    sh_run "$cmd"; expect "valid" ;;
  "cairn deploy examples/web-process.yaml --dry-run")
    sh_run "$cmd"; expect "would bid" ;;
  "cairn deploy examples/web-process.yaml")
    sh_run "$cmd"; expect "/l/lease-0/" ;;
  "curl http://127.0.0.1:7950/l/lease-0/")
    sh_run "$cmd -sf"; expect "hello cairn" ;;
  "cairn lease ls")
    sh_run "$cmd"; expect "lease-0" ;;
  "cairn lease status lease-0")
    sh_run "$cmd"; expect "running|active" ;;
  "cairn lease logs lease-0")
    sh_run "$cmd"; expect "serving lease 0" ;;
  "cairn lease events lease-0" | "cairn lease topup lease-0 \"1 CRN\"")
    sh_run "$cmd" ;;
  "cairn lease close lease-0 --reason \"done\"")
    sh_run "$cmd"; expect "closed" ;;
  "head -c 8388608 /dev/urandom > big.iso")
    sh_run "$cmd"; [ "$(stat -c %s big.iso)" = 8388608 ] || fail "big.iso is not 8 MiB" ;;
  "cairn store put big.iso")
    sh_run "$cmd"
    BLOB="$(grep -oE '^[0-9a-f]{64}$' "$work/out" | head -1)"
    [ -n "$BLOB" ] || fail "no blob id on the output" ;;
  "cairn store put big.iso --durability 6 --loss-rate 1%")
    sh_run "$cmd"; expect '^[0-9a-f]{64}$' ;;
  "cairn store put big.iso --dry-run")
    sh_run "$cmd"; expect "would store 8388608 bytes" ;;
  "cairn store put big.iso --public")
    sh_run "$cmd"
    PUBLIC_BLOB="$(grep -oE '^[0-9a-f]{64}$' "$work/out" | head -1)"
    [ -n "$PUBLIC_BLOB" ] || fail "no blob id on the output" ;;
  "cairn store durability --redundancy 10+5")
    sh_run "$cmd"; expect "^10\+5" ;;
  "cairn store get <blob id> -o copy.iso")
    sh_run "$cmd"; cmp -s big.iso copy.iso || fail "copy.iso differs from big.iso" ;;
  "cairn store get <blob id> -o - | sha256sum")
    sh_run "$cmd"; expect "^$(sha256sum <big.iso | cut -d' ' -f1) " ;;
  "cairn store get <blob id> -o part --range 0..1048576")
    sh_run "$cmd"; cmp -s part <(head -c 1048576 big.iso) || fail "part is not big.iso's first MiB" ;;
  "cairn store status <blob id>")
    sh_run "$cmd"; expect "$BLOB" ;;
  "cairn store ls")
    sh_run "$cmd"; expect "deal-0" ;;
  "cairn store extend deal-0 --epochs 20" | "cairn store audit deal-0" | "cairn store challenge deal-0" | "cairn store cancel deal-1")
    sh_run "$cmd" ;;
  "curl -r 0-99 http://127.0.0.1:7790/v1/blobs/<public blob id>")
    sh_run "$cmd -sf -o range.bin"
    cmp -s range.bin <(head -c 100 big.iso) || fail "the gateway's bytes 0-99 are not big.iso's" ;;
  "cairn bench store --size-mib 1024 --json")
    sh_run "${cmd/--size-mib 1024/--size-mib 64}"; expect '"put' ;;
  "cairn ledger simulate --blocks 2000 --seed 7")
    ctrl_c_and_resume
    sh_run "$cmd" ;;
  "cairn stats")
    sh_run "$cmd" ;;
  "curl localhost:7780/api/v1/summary")
    sh_run "$cmd -sf"; expect '"providers' ;;
  "cairn devnet --home /tmp/c4 --validators 4 --init-only")
    sh_run "$cmd --api-port $C4_API --p2p-base-port $C4_P2P"; expect "node-3.toml" ;;
  "for i in 0 1 2 3; do cairn node --home /tmp/c4 --config /tmp/c4/node-\$i.toml & done")
    local i
    for i in 0 1 2 3; do
      cairn node --home "$work/c4" --config "$work/c4/node-$i.toml" >>"$work/c4.log" 2>&1 &
      cluster_pids+=($!)
    done ;;
  "cairn --home /tmp/c4 --node http://127.0.0.1:7700 status")
    wait_for 120 "the 4-process cluster's first block" bash -c \
      "$cmd --json | grep -qE '\"height\": *[1-9]'"
    sh_run "$cmd"; expect "height" ;;
  *)
    fail "README.md has a command this script does not follow: $readme (add it to scripts/quickstart.sh)" ;;
  esac
}

# Ctrl-C, as the README promises it: clean, exclusive, and resumable.
ctrl_c_and_resume() {
  local before out rc
  before="$(height)"
  out="$(timeout 30 cairn devnet "${devnet_flags[@]}" 2>&1)" && fail "a second devnet on the same home started"
  grep -q "already running.*process $devnet_pid" <<<"$out" || fail "the second devnet did not name pid $devnet_pid: $out"
  local mark
  mark="$(wc -l <"$work/devnet.log")"
  local t0 stop_ms
  t0=$(date +%s%N)
  kill -INT "$devnet_pid"
  rc=0
  wait "$devnet_pid" || rc=$?
  stop_ms=$((($(date +%s%N) - t0) / 1000000))
  devnet_pid=""
  [ "$rc" = 0 ] || fail "the devnet exited $rc on Ctrl-C"
  if tail -n +"$((mark + 1))" "$work/devnet.log" | grep -iE 'error|panic|warning' >"$work/out"; then
    fail "stopping the devnet printed errors"
  fi
  start_devnet
  at_height "$before" || fail "the restarted devnet is below height $before"
  echo "    Ctrl-C: stopped cleanly in $stop_ms ms at height $before, refused a second devnet, resumed from disk"
}

# Read them all first: the commands must not read the list as their standard input.
mapfile -t commands < <(readme_commands)
total=${#commands[@]}
[ "$total" -gt 30 ] || fail "found only $total commands in README.md's quickstart"
echo "quickstart: $total commands from README.md, home $CAIRN_HOME, ports $base..$((base + 59))"
for line in "${commands[@]}"; do
  step=$((step + 1))
  echo "[$step/$total] $line"
  rm -f "$work/out"
  step_for "$line" </dev/null
  if [ "${QUICKSTART_VERBOSE:-}" = 1 ] && [ -f "$work/out" ]; then
    head -c 4000 "$work/out" | sed 's/^/    | /'
  fi
done
echo "quickstart: all $total README commands ran as written"
