# Builds `lib` (see default.nix). Each file below returns an attribute set of functions and
# receives the finished `lib`, so files may use each other's helpers. `base` is a library whose
# names ours replace (its helper namespaces are extended, not replaced); the usual one is empty.
{ base ? { } }:
let
  parts = {
    trivial = (base.trivial or { }) // import ./trivial.nix { inherit lib; };
    lists = (base.lists or { }) // import ./lists.nix { inherit lib; };
    strings = (base.strings or { }) // import ./strings.nix { inherit lib; };
    attrsets = (base.attrsets or { }) // import ./attrsets.nix { inherit lib; };
    options = import ./options.nix { inherit lib; };
    modules = import ./modules.nix { inherit lib; };
    docs = import ./docs.nix { inherit lib; };
  };

  lib =
    base
    // parts.trivial
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
