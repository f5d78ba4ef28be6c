# A type given where an option was meant is reported as such.
let lib = import ../../../lib; in
(lib.evalModules { modules = [ { _file = "t.nix"; options.port = lib.types.port; } ]; }).config
