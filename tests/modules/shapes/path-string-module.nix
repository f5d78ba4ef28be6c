# An absolute path given as a string is loaded like a path.
let lib = import ../../../lib; in
(lib.evalModules { modules = [ (toString ./path-string-module.d/m.nix) ]; }).config
