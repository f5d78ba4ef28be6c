# A disabledModules item that identifies no module (here a function) is an error.
let lib = import ../../../lib; in
(lib.evalModules { modules = [ { _file = "f.nix"; disabledModules = [ (x: x) ]; } ]; }).config
