#!/bin/bash
# run-in-tools [--rw DIR]... [--ro DIR]... [--] COMMAND [ARG]...
#
# Runs COMMAND with the locked trixie tools tree as / (bubblewrap, a user namespace in which
# the caller is uid 0), so builds never depend on the host's tool versions. Visible inside:
# /nix/store (read-only), the Nix build directory and the derivation's existing outputs
# (read-write, same paths as outside), a fresh /tmp, /dev and /proc, and any --rw/--ro DIR.
set -euo pipefail
args=(
  --unshare-user --uid 0 --gid 0 --cap-add ALL --die-with-parent
  --ro-bind @tools@ / --ro-bind /nix/store /nix/store
  --dev /dev --proc /proc --tmpfs /tmp --tmpfs /var/tmp --tmpfs /run
  --setenv PATH /usr/sbin:/usr/bin --setenv HOME /tmp --setenv LC_ALL C.UTF-8 --setenv TZ UTC
  --setenv SOURCE_DATE_EPOCH "${SOURCE_DATE_EPOCH:-@sourceDateEpoch@}"
)
visible=()
bind() { args+=("$1" "$2" "$2"); visible+=("$2"); }
if [ -n "${NIX_BUILD_TOP:-}" ] && [ -d "$NIX_BUILD_TOP" ]; then bind --bind "$NIX_BUILD_TOP"; fi
for output in ${outputs:-out}; do
  path="${!output:-}"
  if [ -n "$path" ] && [ -e "$path" ]; then bind --bind "$path"; fi
done
while [ $# -gt 0 ]; do
  case "$1" in
    --rw) bind --bind "$2"; shift 2 ;;
    --ro) bind --ro-bind "$2"; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: run-in-tools [--rw DIR]... [--ro DIR]... [--] COMMAND [ARG]..." >&2; exit 2; }
# Keep the working directory when it is visible inside, else start in /tmp.
cwd=/tmp
for dir in "${visible[@]}"; do
  case "$PWD/" in "$dir"/*) cwd="$PWD" ;; esac
done
args+=(--chdir "$cwd")
exec @bwrap@ "${args[@]}" "$@"
