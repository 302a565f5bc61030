#!/usr/bin/env bash
# Fair audits on a real devnet (issue "fair audits", docs/benchmarks.md): a default-shaped
# devnet (one validator auditing, six storage providers, 4+2 blobs) runs EPOCHS epochs
# while scripts/hog.sh saturates every core and rewrites a file with fsync beside it. Along
# the way `cairn store challenge` times every holder again and again (the raw figures a
# rule is judged on); at the end it prints what the chain did to the honest providers:
# strikes, faults, jail, slashes. Exits non-zero if any honest provider was faulted.
#
#   scripts/fair-audit.sh [--quiet] [--epochs N] [--bin PATH] [--out DIR]
#
# --quiet runs without the hog (the baseline). The devnet's ports are picked free and its
# home is new, so it runs beside another devnet or a test run. CAIRN_AUDIT_MAX_CPU_PRESSURE
# and CAIRN_AUDIT_MAX_PROBE_SLOWDOWN pass through to the auditor (100 and 0 turn its
# overload check off, to see what the strikes alone do).
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=20
hog=1
bin=target/debug/cairn
out=""
while (($#)); do
  case "$1" in
    --quiet) hog=0 ;;
    --epochs) epochs="$2"; shift ;;
    --bin) bin="$2"; shift ;;
    --out) out="$2"; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$bin" ] || { echo "no cairn binary at $bin (cargo build -p cairn-cli, or --bin)" >&2; exit 2; }
work="$(mktemp -d)"
out="${out:-$work}"
mkdir -p "$out"
home="$work/home"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=$(free_port)
p2p=$(free_port)
explorer=$(free_port)
gateway=$(free_port)
# Six consecutive free ports for the storage providers, below the ephemeral range.
storage=""
for base in $(seq 21000 37 31000); do
  ok=1
  for i in 0 1 2 3 4 5; do
    python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',$((base + i))))" 2>/dev/null || { ok=0; break; }
  done
  if ((ok)); then storage=$base; break; fi
done
[ -n "$storage" ] || { echo "no six free ports for the storage providers" >&2; exit 1; }
block_ms=500
epoch_blocks=40
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM
cli() { "$bin" --home "$home" --node "http://127.0.0.1:$api" "$@"; }
echo "devnet: home $home, API $api, storage ports $storage..$((storage + 5)), ${epochs} epochs of ${epoch_blocks} x ${block_ms} ms" >&2
setsid "$bin" --home "$home" devnet --api-port "$api" --p2p-base-port "$p2p" \
  --explorer-port "$explorer" --gateway-port "$gateway" --storage-base-port "$storage" \
  --compute-provers 0 --compute-providers 0 --block-time-ms "$block_ms" \
  --epoch-length-blocks "$epoch_blocks" --audited-shards-per-epoch 6 \
  >"$out/devnet.log" 2>&1 &
pids+=($!)
for _ in $(seq 120); do
  cli status --json >/dev/null 2>&1 && break
  sleep 1
done
cli status --json >/dev/null || { echo "the devnet did not start:" >&2; tail -5 "$out/devnet.log" >&2; exit 1; }
# Three 8 MiB blobs (2 MiB shards of 2 049 leaves, as in the simulation), 4+2, long deals.
deals=()
for i in 1 2 3; do
  head -c $((8 << 20)) /dev/urandom >"$work/blob-$i"
  cli store put "$work/blob-$i" --redundancy 4+2 --epochs $((epochs + 10)) --json >"$work/put-$i.json"
  deals+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["deal"])' "$work/put-$i.json")")
done
echo "deals: ${deals[*]}" >&2
height() { cli status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["height"])'; }
start=$(height)
if ((hog)); then
  setsid scripts/hog.sh "$work/hog" 2>>"$out/devnet.log" &
  pids+=($!)
fi
end=$((start + epochs * epoch_blocks))
: >"$out/challenges.json"
while (($(height) < end)); do
  for d in "${deals[@]}"; do
    cli store challenge "$d" --json >>"$out/challenges.json" 2>/dev/null || true
  done
  echo "height $(height) of $end" >&2
  sleep 5
done
cli --json status >"$out/status.json" 2>/dev/null || true
curl -s "http://127.0.0.1:$api/v1/providers?limit=100" >"$out/providers.json"
python3 - "$out" "$start" <<'EOF'
import json, sys, statistics
out, start = sys.argv[1], int(sys.argv[2])
times, outcomes = [], {}
text, at, docs = open(f"{out}/challenges.json").read(), 0, []
decoder = json.JSONDecoder()
while True:
    while at < len(text) and text[at].isspace():
        at += 1
    if at >= len(text):
        break
    doc, at = decoder.raw_decode(text, at)
    docs.append(doc)
for doc in docs:
    for h in doc.get("holders", []):
        # Binaries from before the late band print only `failure`.
        outcome = h.get("outcome") or ("on_time" if h.get("failure") is None else "failed")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome != "wrong":
            times.append(h["elapsed_ms"])
times.sort()
def pct(p):
    return times[min(len(times) - 1, int(len(times) * p))] if times else None
print(f"store challenge: {len(times)} honest audits, outcomes {outcomes}")
print(f"  elapsed ms: p50 {pct(0.5)} p90 {pct(0.9)} p99 {pct(0.99)} max {times[-1] if times else None}")
old = sum(1 for t in times if t > 2024)
print(f"  over the old 2 024 ms deadline (each a fault before): {old}")
providers = json.load(open(f"{out}/providers.json"))["providers"]
bad = 0
for p in providers:
    if p["declared"].get("storage_bytes", 0) == 0:
        continue
    status = p["status"] if isinstance(p["status"], str) else json.dumps(p["status"])
    print(f"  provider {p['address'][:14]}…: status {status}, strikes {p.get('late_audit_epochs')}, faulty epochs in a row {p.get('consecutive_faulty_epochs')}, faults {p.get('total_faults')}, slashed {p.get('total_slashed')} uCRN")
    if "active" not in status or (p.get("consecutive_faulty_epochs") or 0) > 0 or (p.get("total_faults") or 0) > 0:
        bad += 1
log = open(f"{out}/devnet.log").read().splitlines()
audits = [l for l in log if "shard(s) audited" in l]
print(f"auditor: {len(audits)} epoch lines; reported late: {sum('late in' in l for l in audits)}, reported wrong or too late: {sum('wrong or too late in' in l for l in audits)}, reported late or wrong (before the late band): {sum('late or wrong in' in l for l in audits)}, overloaded: {sum('overloaded' in l for l in audits)}")
for l in audits[-5:]:
    print("  " + l.strip())
faults = [l for l in log if any(w in l.lower() for w in ("faulted", "slashed", "jailed"))]
print(f"devnet log lines naming faults, slashes or jail: {len(faults)}")
sys.exit(1 if bad else 0)
EOF
