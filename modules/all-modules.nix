# Every module in the tree: the core (always loaded) and the on-demand ones. Used for the
# options reference, so that all options are documented in one place.
import ./module-list.nix ++ [
  ./services/updates.nix
  ./services/provisioning.nix
  ./services/firewall.nix
  ./services/openssh.nix
  ./services/resolved.nix
  ./services/timesyncd.nix
  ./services/nginx.nix
  ./services/oci-containers.nix
  ./services/nspawn-containers.nix
  ./services/fwupd.nix
]
