# anything merges attribute sets recursively.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.a = lib.mkOption { type = lib.types.anything; }; } { a = { x.y = 1; s = "s"; }; } { a = { x.z = 2; s = "s"; }; } ];
}).config
