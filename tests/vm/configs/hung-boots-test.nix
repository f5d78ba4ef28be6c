# The machine of tests/vm/test_hung_boots.py: examples/minimal.nix with the test backdoor, short
# limits for trial boots, and the faults the test's bad boot entries switch on from the kernel
# command line (each unit only runs when its word is there, so good boots never see them), and
# what the test needs to activate a trial by kexec as the update agent does (kexec-tools, the
# agents' UKI reader).
{ pkgs, ... }:
let
  # A fault that ends the boot early in sysinit when `sonix.test.<word>` is on the command
  # line; ordered before the backdoor, so that the test never talks to a boot about to go down.
  earlyFault = word: what: command: {
    description = "${what} (fault injected by the test)";
    before = [ "sysinit.target" "sonix-backdoor.service" ];
    unitConfig = {
      DefaultDependencies = false;
      ConditionKernelCommandLine = "sonix.test.${word}";
    };
    serviceConfig = {
      Type = "oneshot";
      ExecStart = command;
    };
  };
in
{
  imports = [
    ../../../examples/minimal.nix
    ../../../modules/testing/backdoor.nix
  ];

  image.version = "1";

  # One try: a bad entry is booted once, then the previous one (keeps the test to few boots).
  boot.loader.tries = 1;

  health.checks.journald.unit = "systemd-journald.service";
  # Fails while /run has the test's mark (soft-reboot keeps /run, a firmware reboot does not),
  # or on a boot whose command line has the test's word (the kexec'd trial).
  health.checks.unmarked.command =
    "! test -e /run/sonix-test-unhealthy && ! grep -qw sonix.test.unhealthy /proc/cmdline";
  # The first boot of the image is a trial too (its entry has a counter) and under TCG a first
  # boot takes a few minutes: the limit leaves room for it. The hang scenario shortens it for
  # its own boot on the kernel command line (sonix.boot_time_limit=).
  health.bootTimeLimit = "10min";
  health.emergencyTimeLimit = "20s";

  # sonix.test.hang: a unit that sysinit.target waits for and that never finishes.
  systemd.services.test-hang-in-sysinit = {
    description = "Hang in sysinit (fault injected by the test)";
    before = [ "sysinit.target" ];
    unitConfig = {
      DefaultDependencies = false;
      ConditionKernelCommandLine = "sonix.test.hang";
    };
    serviceConfig = {
      Type = "oneshot";
      ExecStart = "/usr/bin/sleep infinity";
      TimeoutStartSec = "infinity";
    };
  };
  # sonix.test.panic: the kernel panics early in sysinit (panic=5 reboots it).
  systemd.services.test-panic = earlyFault "panic" "Kernel panic"
    "/usr/bin/sh -c 'echo c > /proc/sysrq-trigger'";
  # sonix.test.crash: PID 1 crashes in sysinit (systemd.crashAction reboots).
  systemd.services.test-crash-pid1 = earlyFault "crash" "Crash PID 1"
    "/usr/bin/sh -c 'kill -SEGV 1'";
  systemd.targets.sysinit.wants =
    [ "test-hang-in-sysinit.service" "test-panic.service" "test-crash-pid1.service" ];

  # The kexec trial: the test loads the UKI's kernel and initrd as the update agent does.
  environment.packages = [ pkgs.kexec-tools ];
  system.agents = [ "uki" ];
}
