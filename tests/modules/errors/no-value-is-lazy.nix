# An option without value is only an error when it is read.
let lib = import ../../../lib; in
(lib.evalModules { modules = [ { options.a = lib.mkOption { type = lib.types.str; }; options.b = lib.mkOption { default = 1; }; } ]; }).config.b
