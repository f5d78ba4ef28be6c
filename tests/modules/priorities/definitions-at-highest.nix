# The record's definitions are those that won, in order.
let lib = import ../../../lib; in
let o = (lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.int; default = [ ]; }; }
    { l = [ 1 ]; } { l = lib.mkDefault [ 2 ]; } { l = [ 3 ]; }
  ];
}).options.l; in
o.definitions
