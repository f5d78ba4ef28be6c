# mkBefore around a set of options applies to each of them.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.a = lib.mkOption { type = lib.types.listOf lib.types.int; }; options.b = lib.mkOption { type = lib.types.lines; }; }
    { a = [ 2 ]; b = "2"; } { config = lib.mkBefore { a = [ 1 ]; b = "1"; }; }
  ];
}).config
