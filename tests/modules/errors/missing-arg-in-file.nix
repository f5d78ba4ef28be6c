# A module file asking for a missing argument is named by its path.
let lib = import ../../../lib; in
(lib.evalModules { modules = [ ./missing-arg-in-file.d/m.nix ]; }).config
