# A module of the evaluation's class, or of none, is loaded.
let lib = import ../../../lib; in
(lib.evalModules {
  class = "sonix";
  modules = [ { _class = "sonix"; options.x = lib.mkOption { default = 1; }; } { options.y = lib.mkOption { default = 2; }; } ];
}).config
