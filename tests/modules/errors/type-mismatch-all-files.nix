# A type error shows the offending definitions, then every definition with its file.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.l = lib.mkOption { type = lib.types.listOf lib.types.str; }; } ./type-mismatch-all-files.d/good.nix ./type-mismatch-all-files.d/bad.nix ];
}).config
