# functionTo merges the results of all definitions by the element type.
let lib = import ../../../lib; in
let f = (lib.evalModules {
  modules = [
    { options.f = lib.mkOption { type = lib.types.functionTo (lib.types.listOf lib.types.int); }; }
    { f = x: [ x ]; } { f = x: [ (x * 10) ]; }
  ];
}).config.f; in
f 2
