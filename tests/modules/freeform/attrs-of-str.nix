# With a freeform type, undeclared definitions are merged by that type.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { freeformType = lib.types.attrsOf lib.types.str; options.declared = lib.mkOption { type = lib.types.int; default = 1; }; }
    { free = "yes"; }
  ];
}).config
