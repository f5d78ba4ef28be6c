# A module marked with another `_class` than the evaluation's is refused.
let lib = import ../../../lib; in
(lib.evalModules {
  class = "sonix";
  modules = [ { _file = "darwin.nix"; _class = "darwin"; options.x = lib.mkOption { default = 1; }; } ];
}).config
