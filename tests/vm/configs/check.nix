# examples/minimal.nix as a test image: with the driver's backdoor and the boot report.
{ ... }:
{
  imports = [
    ../../../examples/minimal.nix
    ../../../modules/testing/backdoor.nix
    ../../../modules/testing/boot-report.nix
  ];
}
