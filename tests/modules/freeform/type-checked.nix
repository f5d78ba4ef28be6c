# Freeform definitions are checked against the freeform type.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { _module.freeformType = lib.types.attrsOf lib.types.str; }
    { _file = "f.nix"; free = 5; }
  ];
}).config
