# The machine of tests/vm/test_updates.py: examples/minimal.nix with the test backdoor and
# automatic updates from the channel the test serves on the host's loopback, reached at
# http://10.0.2.100/ through a QEMU guestfwd. The test writes one small file per release that
# imports this one and sets image.version and updates.trustedKeys (its session's key).
{ ... }:
{
  imports = [
    ../../../examples/minimal.nix
    ../../../modules/testing/backdoor.nix
    ../../../modules/services/updates.nix
  ];

  updates = {
    enable = true;
    channel = "http://10.0.2.100/";
    # The test starts sonix-update.service itself.
    firstCheckDelay = "1h";
    randomizedDelay = "0";
  };

  # Two tries, so that a failing release boots twice before the rollback (and the test stays
  # within a few boots under TCG).
  boot.loader.tries = 2;

  # Every release checks something real; boot-complete.target requires it.
  health.checks.journald.unit = "systemd-journald.service";
}
