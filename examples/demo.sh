#!/usr/bin/env bash
# The Signet demo: keys → build → inspect → verify → tamper one byte → verify refuses.
# Run by `npm run demo` after the set-up script. Works in a temp folder; leaves nothing behind
# unless SIGNET_DEMO_DIR is set. Every step is checked: the demo stops at the first one that fails.
#   SIGNET_DEMO_PORT=N      the update server's port (default: a free one the server picks)
#   SIGNET_DEMO_SKIP_BOOT=1 skip steps 9 and 9b (booting disks in QEMU), e.g. where QEMU is missing
#   SIGNET_DEMO_ADMIN_PORT=N the port forwarded to router-admin's 443 in step 9b (default: a free one)
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

step "8. a full flashable disk: GPT, signed FIT (kernel + initramfs with the verifying boot stage), slot A, slot B, state" \
  signet disk app.simg --board qemu-virt-arm64 --keys keys --out disk.img --key-dtb u-boot-pubkey.dtb
signet disk app.simg --board qemu-virt-arm64 --keys keys --out disk.img --key-dtb u-boot-pubkey.dtb

if [ "${SIGNET_DEMO_SKIP_BOOT:-}" = 1 ]; then
  step "9. (skipped: SIGNET_DEMO_SKIP_BOOT=1) boot it in QEMU" signet run disk.img --board qemu-virt-arm64 --key-dtb u-boot-pubkey.dtb --halt
else
  step "9. boot it in QEMU: U-Boot verifies the FIT, the boot stage verifies the app, the app runs" \
    signet run disk.img --board qemu-virt-arm64 --key-dtb u-boot-pubkey.dtb --halt
  signet run disk.img --board qemu-virt-arm64 --key-dtb u-boot-pubkey.dtb --halt --timeout 600 | tee run.log
  grep -q '^boot\[OK\] slot=a' run.log || { echo "DEMO FAILED: no boot[OK] line" >&2; exit 1; }
fi

# Port: SIGNET_DEMO_ADMIN_PORT, or a free one on 127.0.0.1 (18080 in the docs).
admin_port="${SIGNET_DEMO_ADMIN_PORT:-$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")}"
if [ "${SIGNET_DEMO_SKIP_BOOT:-}" = 1 ]; then
  step "9b. (skipped: SIGNET_DEMO_SKIP_BOOT=1) a service that serves: examples/router-admin over HTTPS" \
    signet run admin-disk.img --board qemu-virt-arm64 --key-dtb u-boot-pubkey.dtb --net user --forward "$admin_port:443"
else
  step "9b. a service that serves: examples/router-admin, its TLS key and certificate provisioned per device (never in the image), HTTPS from the guest" \
    signet build --project examples/router-admin ... "&&" signet disk ... "&&" signet device provision --disk admin-disk.img --id router-0001 --issue ... \
    "&&" signet run admin-disk.img --net user --forward "$admin_port:443" "&&" curl --cacert keys/vendor-ca.crt "https://localhost:$admin_port/api/status"
  signet build --project "$root/examples/router-admin" --version 1.2.0 --security-counter 3 --keys keys --out admin.simg
  signet disk admin.simg --board qemu-virt-arm64 --keys keys --out admin-disk.img --key-dtb u-boot-pubkey.dtb
  signet device provision --disk admin-disk.img --id router-0001 --board qemu-virt-arm64 --ca-dir keys --issue --host localhost
  node "$root/sdk/cli/signet.mjs" run admin-disk.img --board qemu-virt-arm64 --key-dtb u-boot-pubkey.dtb --net user --forward "$admin_port:443" > admin-run.log 2>&1 &
  admin_pid=$!
  stop_admin() { # QEMU first, then signet run
    for q in $(pgrep -P "$admin_pid" -f qemu-system 2>/dev/null); do kill "$q" 2>/dev/null || true; done
    kill "$admin_pid" 2>/dev/null || true
    wait "$admin_pid" 2>/dev/null || true
  }
  trap 'stop_admin; [ -n "${SIGNET_DEMO_DIR:-}" ] || rm -rf "$work"' EXIT
  answer=""
  for _ in $(seq 1 600); do
    answer="$(curl -sS --max-time 10 --cacert keys/vendor-ca.crt "https://localhost:$admin_port/api/status" 2>/dev/null)" && break
    answer=""
    kill -0 "$admin_pid" 2>/dev/null || break
    sleep 1
  done
  grep -a 'boot\[OK\]\|app\[' admin-run.log | tr -d '\r' || true
  echo "\$ curl --cacert keys/vendor-ca.crt https://localhost:$admin_port/api/status"
  echo "$answer"
  stop_admin
  trap '[ -n "${SIGNET_DEMO_DIR:-}" ] || rm -rf "$work"' EXIT
  case "$answer" in
    *'"service":"router-admin","version":"1.2.0","board":"qemu-virt-arm64"'*) ;;
    *) tail -n 20 admin-run.log >&2; echo "DEMO FAILED: router-admin did not answer /api/status over HTTPS" >&2; exit 1 ;;
  esac
fi

# Port 0: the server takes a free port and says which (its --json line); a fixed port that is
# taken stops the demo here, with the server's own error.
port="${SIGNET_DEMO_PORT:-0}"
step "10. the update server: online keys only (snapshot, timestamp), SQLite + blob folder, mutual TLS" \
  signet server keys --keys keys --out server-keys "&&" signet server --data ota-data --keys server-keys --port "$port" --open-local
signet server keys --keys keys --out server-keys
node "$root/sdk/cli/signet.mjs" server --data ota-data --keys server-keys --port "$port" --open-local --json > server.log 2>&1 &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true; [ -n "${SIGNET_DEMO_DIR:-}" ] || rm -rf "$work"' EXIT
server=""
for _ in $(seq 1 300); do
  server="$(sed -n 's/^{"url":"\(https:[^"]*\)".*/\1/p' server.log | head -n 1)"
  [ -n "$server" ] && break
  kill -0 "$server_pid" 2>/dev/null || break # it exited: its error is in server.log
  sleep 0.1
done
if [ -z "$server" ]; then
  cat server.log >&2
  echo "DEMO FAILED: the update server did not start on port $port (set SIGNET_DEMO_PORT to a free port, or leave it unset)" >&2
  exit 1
fi
echo "signet server listening on $server (pid $server_pid)"

step "11. identities from the vendor CA: an admin (for publishing) and a device" \
  signet device enroll --admin --id admin --keys keys --out admin "&&" signet device enroll --id tv-0001 --board qemu-virt-arm64 --keys keys --out devices/tv-0001
signet device enroll --admin --id admin --keys keys --out admin
signet device enroll --id tv-0001 --board qemu-virt-arm64 --keys keys --out devices/tv-0001

step "12. a simulated device (real boot stage over a flash file, real agent) boots its factory image 1.2.0" \
  signet device simulate --dir devices/tv-0001 --board qemu-virt-arm64 --root keys/root.json --server "$server" --factory app.simg
signet device simulate --dir devices/tv-0001 --board qemu-virt-arm64 --root keys/root.json --server "$server" --factory app.simg

step "13. release 1.3.0: build, publish (targets signed offline here; the server adds snapshot/timestamp), roll out" \
  signet publish app-1.3.0.simg --server "$server" --keys keys "&&" signet rollout create --board qemu-virt-arm64 --version 1.3.0 --percent 100 --halt-failure-rate 0.05
signet build --project "$root/examples/hello" --version 1.3.0 --security-counter 4 --keys keys --out app-1.3.0.simg
signet publish app-1.3.0.simg --server "$server" --keys keys --admin admin
signet rollout create --board qemu-virt-arm64 --version 1.3.0 --percent 100 --halt-failure-rate 0.05 --server "$server" --admin admin

step "14. the device checks in, verifies through TUF and the image verifier, stages B, trial-boots, confirms" \
  signet device simulate --dir devices/tv-0001 --board qemu-virt-arm64 --root keys/root.json --server "$server"
signet device simulate --dir devices/tv-0001 --board qemu-virt-arm64 --root keys/root.json --server "$server" | tee update.log
grep -q 'boot\[CONFIRM\] slot=b version=1.3.0' update.log || { echo "DEMO FAILED: the update was not confirmed" >&2; exit 1; }
signet rollout status --server "$server" --admin admin
printf '\n\033[1mDemo finished.\033[0m (dashboard while the server runs: %s/dashboard)\n' "$server"
