# nullOr: null alone is null, a value alone is checked by the element type.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.a = lib.mkOption { type = lib.types.nullOr lib.types.int; }; options.b = lib.mkOption { type = lib.types.nullOr lib.types.lines; }; }
    { a = null; b = "x"; } { a = null; b = "y"; }
  ];
}).config
