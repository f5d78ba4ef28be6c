# unique adds its message to the error.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.p = lib.mkOption { type = lib.types.unique { message = "Only one package set may be given."; } lib.types.attrs; }; } { p = { }; } { p = { }; } ];
}).config
