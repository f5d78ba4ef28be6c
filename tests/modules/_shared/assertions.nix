# `assertions` and `warnings` as the core declares them, for the cases that need them
# (mkRemovedOptionModule, mkRenamedOptionModule, lib.checkAssertWarn).
{ lib, ... }:
let inherit (lib) mkOption types; in
{
  options.assertions = mkOption {
    type = types.listOf (types.submodule {
      options.assertion = mkOption { type = types.bool; description = "Whether the check holds."; };
      options.message = mkOption { type = types.str; description = "What to say when it does not."; };
    });
    default = [ ];
    internal = true;
    description = "Checks that must hold; `lib.checkAssertWarn` lists every failed one.";
  };
  options.warnings = mkOption {
    type = types.listOf types.str;
    default = [ ];
    internal = true;
    description = "Messages printed when the configuration is evaluated.";
  };
}
