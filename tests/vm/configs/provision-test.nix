# The machine of tests/vm/test_provisioning.py: examples/minimal.nix with the test backdoor and
# provisioning from every source. One image serves every case: the test changes only what the
# VM gets from outside (SMBIOS credentials, the metadata server behind 169.254.169.254, a
# matchbox server, no network at all).
{ ... }:
{
  imports = [
    ../../../examples/minimal.nix
    ../../../modules/testing/backdoor.nix
    ../../../modules/services/provisioning.nix
  ];

  provisioning = {
    enable = true;
    # matchbox re-applies its profile at every boot (declarative fleet configuration).
    everyBoot = [ "matchbox" ];
    # The test serves matchbox here (QEMU forwards it to the host): the same image serves the
    # EC2 case, where matchbox is never asked.
    matchbox.url = "http://169.254.169.254:8080";
    # Under TCG the initrd's DHCP alone takes seconds; an absent source is skipped sooner.
    timeout = 60;
  };
}
