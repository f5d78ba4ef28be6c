# mkOrder takes any number; equal numbers keep module order.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.int; }; }
    { l = lib.mkOrder 2000 [ 5 ]; } { l = lib.mkOrder 10 [ 1 ]; } { l = lib.mkOrder 700 [ 2 ]; } { l = lib.mkOrder 700 [ 3 ]; } { l = [ 4 ]; }
  ];
}).config
