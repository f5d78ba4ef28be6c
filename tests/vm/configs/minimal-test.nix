# examples/minimal.nix as the VM tests boot it: with the test backdoor, a service to check,
# an /etc file, and a canary file in /usr that the verity test corrupts on disk.
{ lib, ... }:
{
  imports = [
    ../../../examples/minimal.nix
    ../../../modules/testing/backdoor.nix
  ];

  # Uncompressed erofs, so the canary's bytes can be found in the usr partition.
  image.compression = "none";

  system.usrFiles."lib/sonix/canary.txt".text = lib.concatMapStrings
    (i: "SONIX-CANARY line ${lib.fixedWidthNumber 6 i} of the verity corruption test\n")
    (lib.range 1 8000);

  environment.etc."sonix-test/greeting".text = "hello from the factory\n";

  systemd.services.hello = {
    description = "A service declared in the configuration";
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      ExecStart = "/usr/bin/sh -c 'echo hello > /run/hello'";
    };
  };
  systemd.targets.multi-user.wants = [ "hello.service" ];
}
