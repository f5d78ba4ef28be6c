# The smallest useful sonix server: DHCP on every Ethernet interface (systemd-networkd), one
# user, a persistent journal. Boot it with `./sonix run examples/minimal.nix`.
{ ... }:
{
  networking.hostName = "minimal";

  users.users.admin = {
    isNormalUser = true;
    uid = 1000;
    description = "Administrator";
    extraGroups = [ "systemd-journal" ];
    # The password "sonix" (`openssl passwd -6 sonix`), for trying the image in a VM on the
    # serial console. Replace it (`mkpasswd -m yescrypt`), or use SSH keys, for anything else.
    hashedPassword = "$6$sonixexample$EX6DFOghfeWxi9Ltt06Am9gn6oM5rdfTNPrSRVkGy5h.tUzFY9pUzqS93WUwwV.BjURsRhz42EfNZgXRoGYxz0";
  };

  # Becoming root: `su -` (util-linux) with root's password; sonix ships no sudo
  # (docs/modules.md, "Becoming root"). The same trial password "sonix"; on a real machine
  # give root SSH keys (openssh.nix) and lock the password with "!".
  users.users.root.hashedPassword = "$6$sonixexample$EX6DFOghfeWxi9Ltt06Am9gn6oM5rdfTNPrSRVkGy5h.tUzFY9pUzqS93WUwwV.BjURsRhz42EfNZgXRoGYxz0";

  services.journald.systemMaxUse = "100M";
}
