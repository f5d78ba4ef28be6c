# anything merges functions by merging their results.
let lib = import ../../../lib; in
let f = (lib.evalModules {
  modules = [ { options.f = lib.mkOption { type = lib.types.anything; }; } { f = x: { a = x; }; } { f = x: { b = x + 1; }; } ];
}).config.f; in
f 1
