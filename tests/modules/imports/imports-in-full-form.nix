# `imports` sits beside `options` and `config` in the full form.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ {
    imports = [ { options.a = lib.mkOption { type = lib.types.int; }; } ];
    options.b = lib.mkOption { type = lib.types.int; };
    config = { a = 1; b = 2; };
  } ];
}).config
