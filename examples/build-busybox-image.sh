#!/usr/bin/env bash
# Builds cairn-example-busybox:1 (the image examples/web-container.yaml runs) on this
# machine's Docker Engine: FROM scratch plus Debian's static busybox, no registry needed.
#   examples/build-busybox-image.sh [TAG]
set -euo pipefail
tag="${1:-cairn-example-busybox:1}"
[ -x /bin/busybox ] || { echo "needs /bin/busybox (apt-get install busybox-static)" >&2; exit 1; }
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp /bin/busybox "$ctx/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nLABEL cairn.example=1\n' > "$ctx/Dockerfile"
docker build -q -t "$tag" "$ctx" >/dev/null
echo "$tag"
