# attrsOf merges the attributes of all definitions, each by the element type.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.m = lib.mkOption { type = lib.types.attrsOf (lib.types.listOf lib.types.int); }; } { m.a = [ 1 ]; m.b = [ 2 ]; } { m.a = [ 3 ]; } ];
}).config
