#!/usr/bin/env bash
# The whole test suite, on a fresh machine of the project's kind: installs what it needs,
# then runs every test, heavy scenarios included (nextest profile `ci`).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
# The compute market's process runtime and its tests: bubblewrap, prlimit, a static busybox.
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
[ -x /bin/busybox ] || need_apt+=(busybox-static)
# The explorer's browser test (cli/tests/it/explorer.rs) drives headless Chromium.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  if ! { $SUDO apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"; }; then
    command -v cc >/dev/null 2>&1 || { echo "cannot install build-essential" >&2; exit 1; }
    # Only the browser test may go without its packages, and it says so when it skips.
    export CAIRN_NO_CHROMIUM="apt-get could not install chromium/chromium-driver (no network?)"
  fi
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

# The workspace has no doc tests (examples live in tests/); nextest runs every test binary.
cargo nextest run --workspace --all-targets --profile ci "$@"
