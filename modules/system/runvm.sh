#!/bin/sh
# Boot a copy of the image in QEMU with the serial console on this terminal (Ctrl-a x quits).
# The copy and the firmware variables live in $SONIX_VM_DIR (default ./@name@-vm) and survive
# between runs, like a real disk; delete the directory to start from the factory image.
set -eu
dir="${SONIX_VM_DIR:-./@name@-vm}"
mkdir -p "$dir"
if [ ! -e "$dir/disk.raw" ]; then
  cp --sparse=always @image@ "$dir/disk.raw"
  chmod u+w "$dir/disk.raw"
  # Free space after the image: systemd-repart creates the root there on first boot.
  truncate -s "${SONIX_DISK_SIZE:-4G}" "$dir/disk.raw"
fi
[ -e "$dir/OVMF_VARS.fd" ] || cp /usr/share/OVMF/OVMF_VARS_4M.fd "$dir/OVMF_VARS.fd"
# KVM only where it really runs guests (the sonix CLI probes it); TCG works everywhere.
accel="${SONIX_ACCEL:-tcg}"
exec qemu-system-x86_64 -accel "$accel" -machine q35 -cpu max -smp "${SONIX_CPUS:-2}" -m "${SONIX_MEMORY:-2048}" \
  -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
  -drive if=pflash,format=raw,unit=1,file="$dir/OVMF_VARS.fd" \
  -drive if=none,id=disk0,file="$dir/disk.raw",format=raw -device virtio-blk-pci,drive=disk0 \
  -netdev user,id=n0 -device virtio-net-pci,netdev=n0 -device virtio-rng-pci \
  -nographic "$@"
