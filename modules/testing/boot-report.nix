# The boot report of `sonix run --check`: when the system credential `sonix.report` is set
# (the runner passes it as SMBIOS type 11: io.systemd.credential:sonix.report=1), a unit waits
# until the boot has finished and boot-complete.target is reached, prints the systemd-analyze
# phases and the failed units on /dev/ttyS0 between markers, and powers off. Without the
# credential the unit is skipped (ConditionCredential=), so images can always carry it; the
# image cannot be logged into from the runner, and its UKI command line is fixed, so a
# credential is the one switch the host has. Format: modules/testing/boot-report.sh.
{ ... }:
{
  system.usrFiles = {
    "lib/sonix/boot-report" = {
      source = "${./boot-report.sh}"; # a store path: the builder runs sandboxed
      mode = "0755";
    };

    "lib/systemd/system/sonix-boot-report.service".text = ''
      [Unit]
      Description=sonix boot report on the serial console (sonix run --check)
      ConditionCredential=sonix.report
      # After serial-getty (its vhangup on ttyS0), and after everything of the boot.
      After=getty.target multi-user.target
      [Service]
      # Not oneshot: a oneshot ordered after multi-user.target would keep the boot unfinished,
      # and `systemctl is-system-running --wait` inside would wait for itself.
      Type=exec
      ExecStart=/usr/lib/sonix/boot-report
    '';

    "lib/systemd/system/multi-user.target.wants/sonix-boot-report.service".symlink =
      "../sonix-boot-report.service";
  };
}
