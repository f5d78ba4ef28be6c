# Assertions and warnings: how modules refuse a configuration or warn about it. Building the
# system (and `sonix build`) fails with every failed assertion listed, and prints the warnings.
{ lib, ... }:
let
  inherit (lib) mkOption types;
in
{
  options = {
    assertions = mkOption {
      type = types.listOf (types.submodule {
        options = {
          assertion = mkOption {
            type = types.bool;
            description = "What must hold for the configuration to be valid.";
          };
          message = mkOption {
            type = types.str;
            description = "What is wrong, and how to fix it, for when `assertion` is false.";
          };
        };
      });
      default = [ ];
      internal = true;
      example = lib.literalExpression ''
        [ { assertion = config.networking.hostName != ""; message = "networking.hostName must not be empty"; } ]
      '';
      description = ''
        Conditions that the configuration must meet. When any is false, the build stops with
        all failed messages listed.
      '';
    };

    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
      internal = true;
      example = [ "The option `foo` is deprecated; use `bar` instead." ];
      description = "Messages printed when the system is built; the build goes on.";
    };
  };
}
