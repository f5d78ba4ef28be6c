# A module whose configuration is not an attribute set is an error.
let lib = import ../../../lib; in
(lib.evalModules { modules = [ { _file = "c.nix"; config = [ 1 ]; } ]; }).config
