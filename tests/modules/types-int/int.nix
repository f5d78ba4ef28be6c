# int accepts integers; equal definitions merge.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.i = lib.mkOption { type = lib.types.int; }; } { i = -3; } { i = -3; } ];
}).config
