# Evaluate a sonix configuration: the core modules plus the user's modules.
#
#   import ./eval-config.nix { modules = [ ./examples/minimal.nix ]; }
#
# gives { config, options, checked, ... }, where `checked` is `config` once every assertion holds
# (warnings are printed when it is forced). Packages come in through `pkgs` ("bring your own
# pkgs"): modules receive it as an argument and never build or override packages.
{ modules
, pkgs ? null
, specialArgs ? { }
  # Where the configuration sits in an enclosing one (option names in messages), e.g.
  # [ "containers" "web" "config" ] for an nspawn machine's.
, prefix ? [ ]
, lib ? import ./lib
}:
let
  evaluated = lib.evalModules {
    modules = import ./modules/module-list.nix ++ modules;
    inherit prefix;
    # An option of an on-demand module set without importing it: name the module and the
    # `imports` line (computed only when the error is shown).
    unknownOptionHint = path:
      (import ./modules/module-index.nix { inherit lib; }).hint
        (if lib.take (builtins.length prefix) path == prefix then lib.drop (builtins.length prefix) path else path);
    specialArgs = { modulesPath = ./modules; } // specialArgs;
  };
  withPkgs = if pkgs == null then evaluated else evaluated.extendModules {
    modules = [ { _module.args.pkgs = pkgs; } ];
  };
in
withPkgs // {
  inherit lib;
  checked = lib.checkAssertWarn withPkgs.config withPkgs.config;
}
