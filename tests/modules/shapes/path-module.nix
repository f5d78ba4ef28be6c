# A module may be a path to a file holding a module.
let lib = import ../../../lib; in
(lib.evalModules { modules = [ ./path-module.d/decl.nix ./path-module.d/def.nix ]; }).config
