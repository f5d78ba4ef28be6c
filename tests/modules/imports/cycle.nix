# Modules that import each other terminate: each is loaded once.
let lib = import ../../../lib; in
(lib.evalModules { modules = [ ./cycle.d/a.nix ]; }).config
