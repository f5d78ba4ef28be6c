#!/bin/bash
# sonix boot report for `sonix run --check` (src/sonix/vm/check.py parses it): waits until
# the boot has finished, then prints the systemd-analyze phases and the failed units on the
# serial console between markers, and powers the machine off.
#
#   SONIX-BOOT-REPORT-BEGIN
#   ... free text: systemd-analyze time, blame, failed units ...
#   SONIX-BOOT-REPORT-END state=<running|degraded|...> failed=<n> boot-complete=<active|failed|...>
#     secure-boot=<on|setup|off|no-efi> tpm=<tpm2|tpm1|none>
#     root-encrypted=<yes|no> var-encrypted=<yes|no>      (all on the one END line)
set -u
tty=/dev/ttyS0
report=/run/sonix-boot-report.txt
state=$(systemctl is-system-running --wait 2>/dev/null)
# boot-complete.target pulls in the health checks; starting it waits for them (a no-op
# target when nothing requires it).
if systemctl start boot-complete.target 2>/dev/null; then complete=active; else complete=failed; fi
failed=$(systemctl list-units --state=failed --no-legend --plain --no-pager | wc -l)

# The value byte of a one-byte EFI global variable (after its 4 attribute bytes), or nothing.
efi_byte() {
  local file=/sys/firmware/efi/efivars/$1-8be4df61-93ca-11d2-aa0d-00e098032b8c
  [ -r "$file" ] && od -An -tu1 -j4 -N1 "$file" | tr -d ' \n'
}
secure_boot() {
  [ -d /sys/firmware/efi ] || { echo no-efi; return; }
  if [ "$(efi_byte SecureBoot)" = 1 ]; then echo on
  elif [ "$(efi_byte SetupMode)" = 1 ]; then echo setup
  else echo off
  fi
}
tpm() {
  local major
  major=$(cat /sys/class/tpm/tpm0/tpm_version_major 2>/dev/null) || { echo none; return; }
  echo "tpm$major"
}
# yes when the filesystem mounted at $1 (the root's when $1 is no mount point of its own) is
# on dm-crypt: its device, or a device under it (LVM on LUKS), is a CRYPT- device-mapper target.
encrypted() {
  local device="" mounted
  for mounted in / "$1"; do
    while read -r _ _ id _ point _; do
      [ "$point" = "$mounted" ] && device=$id
    done < /proc/self/mountinfo
  done
  local uuid
  for uuid in /sys/dev/block/"$device"/dm/uuid /sys/dev/block/"$device"/slaves/*/dm/uuid; do
    case $(cat "$uuid" 2>/dev/null) in CRYPT-*) echo yes; return ;; esac
  done
  echo no
}
security="secure-boot=$(secure_boot) tpm=$(tpm)"
security+=" root-encrypted=$(encrypted /) var-encrypted=$(encrypted /var)"
{
  echo "SONIX-BOOT-REPORT-BEGIN"
  echo "## systemd-analyze time"
  systemd-analyze time --no-pager 2>&1
  echo "## slowest units (systemd-analyze blame)"
  systemd-analyze blame --no-pager 2>&1 | head -n 10
  echo "## failed units"
  systemctl list-units --state=failed --no-legend --plain --no-pager 2>&1
  echo "## chain of trust"
  echo "$security"
  echo "SONIX-BOOT-REPORT-END state=$state failed=$failed boot-complete=$complete $security"
} > "$report" 2>&1
# A freshly opened fd: serial-getty's vhangup() on the same tty kills fds opened before it
# (trixie-image-recipe.md §8); the unit is also ordered after getty.target.
cat "$report" > "$tty"
systemctl poweroff --no-block
