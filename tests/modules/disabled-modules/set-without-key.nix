# A module (an attribute set without `key') cannot be disabled: nothing identifies it.
let lib = import ../../../lib; in
(lib.evalModules { modules = [ { _file = "f.nix"; disabledModules = [ { config = { }; } ]; } ]; }).config
