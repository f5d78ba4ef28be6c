# Definitions inside mkIf and mkMerge keep their file and line.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.n = lib.mkOption { type = lib.types.int; }; } ./definition-line-in-condition.d/m.nix ];
}).config
