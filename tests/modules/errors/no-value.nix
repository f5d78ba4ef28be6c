# Reading an option with neither a definition nor a default names it.
let lib = import ../../../lib; in
(lib.evalModules { modules = [ { options.hostName = lib.mkOption { type = lib.types.str; }; } ]; }).config
