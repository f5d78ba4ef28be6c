# An undeclared option is an error even under `mkIf false` (conditions are not evaluated).
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.a = lib.mkOption { default = 1; }; }
    { config = lib.mkIf false { typo = 1; }; }
  ];
}).config
