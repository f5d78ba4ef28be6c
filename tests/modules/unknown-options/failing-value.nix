# An undeclared definition whose value fails is still reported as undeclared.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.a = lib.mkOption { default = 1; }; } { _file = "t.nix"; typo = throw "boom"; } ];
}).config
