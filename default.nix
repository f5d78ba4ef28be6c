# The plain-Nix entry point, for people who prefer nix-build to the sonix CLI:
#
#   nix-build -A config.system.build.runvm && ./result
#   nix-build --arg configuration ./examples/server.nix -A config.system.build.image
#
# `configuration` is a module (path, function or attrset); the Debian package set is the
# locked one in pkgs/ (its .debs must be in the store: `./sonix fetch`).
{ configuration ? ./examples/minimal.nix
, pkgs ? import ./pkgs { }
}:
import ./eval-config.nix {
  modules = [ configuration ];
  inherit pkgs;
}
