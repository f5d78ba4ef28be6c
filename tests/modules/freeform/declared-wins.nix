# A declared option is merged by its own type, not the freeform one.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { freeformType = lib.types.attrsOf lib.types.str; options.n = lib.mkOption { type = lib.types.listOf lib.types.int; }; }
    { n = [ 1 ]; } { n = [ 2 ]; }
  ];
}).config
