# boolByOr: any definition true makes the option true.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.a = lib.mkOption { type = lib.types.boolByOr; }; options.b = lib.mkOption { type = lib.types.boolByOr; default = false; }; }
    { a = false; b = false; } { a = true; b = false; }
  ];
}).config
