# A module may define an option only if some module declares it (through `options`).
let lib = import ../../../lib; in
let
  adaptive = { lib, options, ... }: {
    config = { value = if options ? enable then 360 else 7; } // lib.optionalAttrs (options ? enable) { enable = true; };
  };
  value = { options.value = lib.mkOption { type = lib.types.int; }; };
  enable = { options.enable = lib.mkEnableOption "it"; };
in
[
  (lib.evalModules { modules = [ adaptive value enable ]; }).config
  (lib.evalModules { modules = [ adaptive value ]; }).config
]
