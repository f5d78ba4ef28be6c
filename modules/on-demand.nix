# The on-demand modules: a configuration imports the ones it uses, by their stable name
# (`<sonix/modules/services/nginx.nix>`, see docs/modules.md). Setting one of their options
# without the import is an error that names the module (./module-index.nix).
[
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
