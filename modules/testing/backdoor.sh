#!/bin/bash
# sonix test backdoor: a root shell loop on a virtio serial port. ONLY test images install
# this (modules/testing/backdoor.nix); the test driver (src/sonix/testing) is the other end.
# Protocol (see src/sonix/testing/backdoor.py):
#   host:  "SONIX-RUN <timeout> <length>" padded with spaces to 63 bytes + "\n" (a 64-byte
#          header), then <length> bytes of bash script
#   guest: "SONIX-OUT <base64 stdout>\n" "SONIX-ERR <base64 stderr>\n" "SONIX-STATUS <n>\n"
# Usage: backdoor [DEVICE]   (default: the virtio port named org.sonix.backdoor)
set -u
port=org.sonix.backdoor
dev=${1:-}
if [ -z "$dev" ]; then
  # /dev/virtio-ports/$port is udev's symlink; find the port in sysfs so that this also works
  # without udev (the driver self-test's initrd).
  for name in /sys/class/virtio-ports/*/name; do
    if [ -r "$name" ] && [ "$(< "$name")" = "$port" ]; then
      entry=${name%/name}
      dev=/dev/${entry##*/}
    fi
  done
fi
if [ -z "$dev" ] || [ ! -c "$dev" ]; then
  echo "sonix-backdoor: no virtio port named $port (is this a test VM?)" >&2
  exit 1
fi
work=/run/sonix-backdoor
mkdir -p "$work"
exec 0<>"$dev" 1>&0 2>/dev/null
printf 'SONIX-BACKDOOR-READY\n'
# Fixed-size header and length-framed script, both read with `head -c`, which never reads
# past its count (bash's `read` may read ahead and swallow the script's first bytes).
while header=$(head -c 64) && [ -n "$header" ]; do
  read -r tag timeout length _ <<< "$header"
  [ "$tag" = SONIX-RUN ] || continue
  head -c "$length" > "$work/script"
  (cd / && exec timeout --kill-after=10 "$timeout" bash "$work/script") \
    < /dev/null > "$work/stdout" 2> "$work/stderr"
  status=$?
  printf 'SONIX-OUT '; base64 -w0 "$work/stdout"; printf '\n'
  printf 'SONIX-ERR '; base64 -w0 "$work/stderr"; printf '\n'
  printf 'SONIX-STATUS %d\n' "$status"
done
