#!/bin/bash
# sonix boot report for `sonix run --check` (src/sonix/vm/check.py parses it): waits until
# the boot has finished, then prints the systemd-analyze phases and the failed units on the
# serial console between markers, and powers the machine off.
#
#   SONIX-BOOT-REPORT-BEGIN
#   ... free text: systemd-analyze time, blame, failed units ...
#   SONIX-BOOT-REPORT-END state=<running|degraded|...> failed=<n> boot-complete=<active|failed|...>
set -u
tty=/dev/ttyS0
report=/run/sonix-boot-report.txt
state=$(systemctl is-system-running --wait 2>/dev/null)
# boot-complete.target pulls in the health checks; starting it waits for them (a no-op
# target when nothing requires it).
if systemctl start boot-complete.target 2>/dev/null; then complete=active; else complete=failed; fi
failed=$(systemctl list-units --state=failed --no-legend --plain --no-pager | wc -l)
{
  echo "SONIX-BOOT-REPORT-BEGIN"
  echo "## systemd-analyze time"
  systemd-analyze time --no-pager 2>&1
  echo "## slowest units (systemd-analyze blame)"
  systemd-analyze blame --no-pager 2>&1 | head -n 10
  echo "## failed units"
  systemctl list-units --state=failed --no-legend --plain --no-pager 2>&1
  echo "SONIX-BOOT-REPORT-END state=$state failed=$failed boot-complete=$complete"
} > "$report" 2>&1
# A freshly opened fd: serial-getty's vhangup() on the same tty kills fds opened before it
# (trixie-image-recipe.md §8); the unit is also ordered after getty.target.
cat "$report" > "$tty"
systemctl poweroff --no-block
