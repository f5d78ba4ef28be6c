"""Code that runs inside Nix builds, not on the host.

Each module here is copied into the store on its own and run by a derivation with the locked
trixie tools' python3 (bubblewrap, `pkgs.runInTools`): standard library only, and nothing from
the rest of the sonix package, which is not there. The host imports them only in unit tests.

- `image`: `/usr`, the initrd, the UKI and the disk image (modules/system/build.nix);
- `oci`: oci-archives of locked packages (modules/services/oci-containers.nix);
- `maintscripts`: what Debian's maintainer scripts would have done to a merged package tree
  (`pkgs.usrTree`, pkgs/default.nix).
"""
