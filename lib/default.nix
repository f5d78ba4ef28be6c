# The sonix library: our own module system plus the helpers modules use every day.
#
#   lib = import ./lib;
#   lib.evalModules { modules = [ ./configuration.nix ]; }
#
# Each file below returns an attribute set of functions and receives the finished `lib`, so
# files may use each other's helpers. Namespaces (lib.types, lib.attrsets, ...) and the flat
# names NixOS users know (lib.mkIf, lib.mapAttrs, ...) are both available.
let
  parts = {
    trivial = import ./trivial.nix { inherit lib; };
    lists = import ./lists.nix { inherit lib; };
    strings = import ./strings.nix { inherit lib; };
    attrsets = import ./attrsets.nix { inherit lib; };
    options = import ./options.nix { inherit lib; };
    modules = import ./modules.nix { inherit lib; };
    docs = import ./docs.nix { inherit lib; };
  };

  lib =
    parts.trivial
    // parts.lists
    // parts.strings
    // parts.attrsets
    // parts.options
    // parts.modules
    // parts.docs
    // parts
    // {
      types = import ./types.nix { inherit lib; };
      # `lib.version` lets configurations and tests tell our lib apart from nixpkgs'.
      version = "sonix-lib-1";
    };
in
lib
