# A disabledModules item that identifies no module is an error.
let lib = import ../../../lib; in
(lib.evalModules { modules = [ { disabledModules = [ 3 ]; } ]; }).config
