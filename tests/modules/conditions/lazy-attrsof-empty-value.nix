# lazyAttrsOf gives a vanished key the element type's empty value when it has one.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.m = lib.mkOption { type = lib.types.lazyAttrsOf (lib.types.listOf lib.types.int); }; }
    { m = { a = [ 1 ]; b = lib.mkIf false [ 2 ]; }; }
  ];
}).config
