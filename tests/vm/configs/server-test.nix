# examples/server.nix as the VM tests boot it: with the test backdoor.
{ ... }:
{
  imports = [
    ../../../examples/server.nix
    ../../../modules/testing/backdoor.nix
  ];
}
