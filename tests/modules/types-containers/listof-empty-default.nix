# A listOf option with no definitions and a default of [ ] is [ ].
let lib = import ../../../lib; in
(lib.evalModules { modules = [ { options.l = lib.mkOption { type = lib.types.listOf lib.types.int; default = [ ]; }; } ]; }).config
