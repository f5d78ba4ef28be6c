# Test images only: a root shell for the VM test driver (src/sonix/testing) on the virtio
# serial port `org.sonix.backdoor` that the driver's QEMU command line adds. Import this module
# in test configurations (tests/vm); a real image must never have it.
#
# It only adds files through system.usrFiles: the script, its unit, and the static
# sysinit.target.wants link (the depending side declares the dependency). Started that early,
# tests can also look at a system that never reaches multi-user.target.
{ ... }:
{
  system.usrFiles = {
    "lib/sonix/backdoor" = {
      source = "${./backdoor.sh}"; # a store path: the builder runs sandboxed
      mode = "0755";
    };

    "lib/systemd/system/sonix-backdoor.service".text = ''
      [Unit]
      Description=sonix test backdoor (root shell for the VM test driver)
      Documentation=file:/usr/lib/sonix/backdoor
      # Early: no default dependencies, so it runs from the start of sysinit.target on.
      DefaultDependencies=no
      # Only in virtual machines; the port itself exists only under the test driver's QEMU.
      ConditionVirtualization=vm
      Conflicts=shutdown.target
      Before=shutdown.target
      # The port may appear (or get its name) after the unit starts: retry forever.
      StartLimitIntervalSec=0

      [Service]
      Type=exec
      ExecStart=/usr/lib/sonix/backdoor
      Restart=always
      RestartSec=1
      Environment=HOME=/root TERM=dumb
      WorkingDirectory=/
    '';

    "lib/systemd/system/sysinit.target.wants/sonix-backdoor.service".symlink =
      "../sonix-backdoor.service";
  };
}
