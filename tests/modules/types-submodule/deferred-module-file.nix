# deferredModule marks each definition with its file and the option it came through.
let lib = import ../../../lib; in
let
  outer = lib.evalModules {
    modules = [
      { options.machine = lib.mkOption { type = lib.types.deferredModule; }; }
      { _file = "host.nix"; machine = { config = lib.mkMerge [ { role = 1; } ]; }; }
    ];
  };
in
(lib.evalModules { modules = [ { options.role = lib.mkOption { type = lib.types.str; }; } outer.config.machine ]; }).config
