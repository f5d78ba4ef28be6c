# When every definition is dropped and there is no default, reading the option fails.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.x = lib.mkOption { type = lib.types.int; }; }
    { x = lib.mkIf false 1; }
  ];
}).config
