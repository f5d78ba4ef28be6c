# `apply` transforms the merged value.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.int; apply = builtins.length; }; }
    { l = [ 1 2 ]; } { l = [ 3 ]; }
  ];
}).config
