# When every definition is dropped, the default applies.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.x = lib.mkOption { type = lib.types.int; default = 7; }; }
    { x = lib.mkIf false 1; }
  ];
}).config
