# extendModules keeps the prefix unless given a new one.
let lib = import ../../../lib; in
let
  base = lib.evalModules { prefix = [ "p" ]; modules = [ { options.x = lib.mkOption { default = 1; }; } ]; };
in
[ (base.extendModules { }).options.x.loc (base.extendModules { prefix = [ "q" ]; }).options.x.loc ]
