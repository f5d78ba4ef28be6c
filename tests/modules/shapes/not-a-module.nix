# A module that is neither a function, an attribute set nor a path is an error.
let lib = import ../../../lib; in
(lib.evalModules { modules = [ 42 ]; }).config
