#!/bin/bash
# sonix test backdoor: a root shell loop on a virtio console. ONLY test images install this
# (modules/testing/backdoor.nix); the test driver (src/sonix/testing) is the other end.
# Protocol (see src/sonix/testing/backdoor.py):
#   host:  "SONIX-RUN <timeout> <length>" padded with spaces to 63 bytes + "\n" (a 64-byte
#          header), then <length> bytes of bash script
#   guest: "SONIX-OUT <base64 stdout>\n" "SONIX-ERR <base64 stderr>\n" "SONIX-STATUS <n>\n"
# Usage: backdoor [DEVICE]   (default /dev/hvc0)
set -u
dev=${1:-/dev/hvc0}
work=/run/sonix-backdoor
mkdir -p "$work"
exec 0<>"$dev" 1>&0 2>/dev/null
# Raw tty: no 4 KiB canonical line limit, no echo, no CR/LF translation, no signal characters.
stty raw -echo
printf 'SONIX-BACKDOOR-READY\n'
# Fixed-size header and length-framed script, both read with `head -c`, which never reads
# past the count. (bash's `read` buffers on a tty and would swallow the script's first bytes.)
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
