# A default of the wrong type is reported with the declaring file.
let lib = import ../../../lib; in
(lib.evalModules { modules = [ { _file = "decl.nix"; options.n = lib.mkOption { type = lib.types.int; default = "1"; }; } ]; }).config
