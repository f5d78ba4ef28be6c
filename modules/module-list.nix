# The core modules: always loaded. Everything else is imported on demand by configurations.
[
  ./misc/assertions.nix
  ./system/files.nix
  ./system/agents.nix
  ./system/image.nix
  ./system/build.nix
  ./system/packages.nix
  ./system/boot.nix
  ./system/secure-boot.nix
  ./system/encryption.nix
  ./system/systemd/units.nix
  ./system/tmpfiles.nix
  ./system/etc.nix
  ./system/users.nix
  ./system/networking.nix
  ./system/repart.nix
  ./system/health.nix
  ./services/journald.nix
  # Inert unless the host passes the `sonix.report` credential (`sonix run --check`).
  ./testing/boot-report.nix
]
