# The sonix library: our own module system plus the helpers modules use every day.
#
#   lib = import ./lib;
#   lib.evalModules { modules = [ ./configuration.nix ]; }
#
# Namespaces (lib.types, lib.attrsets, ...) and the flat names NixOS users know (lib.mkIf,
# lib.mapAttrs, ...) are both available. compose.nix builds it; it also takes a base library
# to put ours on top of (tests/modules/nixos-parity.sh runs NixOS's module tests that way).
import ./compose.nix { }
