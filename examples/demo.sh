#!/usr/bin/env bash
# The Signet demo: keys → build → inspect → verify → tamper one byte → verify refuses.
# Run by `npm run demo` after the set-up script. Works in a temp folder; leaves nothing behind
# unless SIGNET_DEMO_DIR is set.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
signet() { node "$root/sdk/cli/signet.mjs" "$@"; }
work="${SIGNET_DEMO_DIR:-$(mktemp -d)}"
[ -n "${SIGNET_DEMO_DIR:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
cd "$work"
step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; }

step "1. a key set (offline root 1-of-1, targets, snapshot, timestamp, vendor CA, FIT key)" signet keys init --dir keys
signet keys init --dir keys

step "2. a signed app image from examples/hello" signet build --project examples/hello --version 1.2.0 --security-counter 3 --keys keys --out app.simg
signet build --project "$root/examples/hello" --version 1.2.0 --security-counter 3 --keys keys --out app.simg

step "3. what is inside" signet inspect app.simg
signet inspect app.simg

step "4. the trusted code base" signet tcb app.simg --html tcb.html
signet tcb app.simg --html tcb.html

step "5. verify for the board it was built for" signet verify app.simg --root keys/root.json --board qemu-virt-arm64
signet verify app.simg --root keys/root.json --board qemu-virt-arm64

step "6. tamper with one byte of the payload, verify again: it must refuse" "printf X | dd of=tampered.simg bs=1 seek=\$((size-200)) conv=notrunc"
cp app.simg tampered.simg
size=$(stat -c %s tampered.simg)
printf 'X' | dd of=tampered.simg bs=1 seek=$((size - 200)) conv=notrunc status=none
if signet verify tampered.simg --root keys/root.json --board qemu-virt-arm64; then
  echo "DEMO FAILED: a tampered image verified" >&2
  exit 1
fi
echo "(refused, as it must be)"

step "7. the wrong board is refused too" signet verify app.simg --root keys/root.json --board xen-arm32
if signet verify app.simg --root keys/root.json --board xen-arm32; then
  echo "DEMO FAILED: an image verified for the wrong board" >&2
  exit 1
fi
echo "(refused, as it must be)"
printf '\n\033[1mDemo finished.\033[0m\n'
