# deferredModule collects module definitions to be evaluated elsewhere.
let lib = import ../../../lib; in
let
  outer = lib.evalModules {
    modules = [
      { options.machine = lib.mkOption { type = lib.types.deferredModule; default = { }; }; }
      { machine = { lib, ... }: { options.role = lib.mkOption { type = lib.types.str; }; }; }
      { machine.role = "web"; }
    ];
  };
in
(lib.evalModules { modules = [ outer.config.machine ]; }).config
