# A module asking for an argument that nothing provides names it.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { key = "needs-pkgs"; imports = [ ({ pkgs, ... }: { options.x = lib.mkOption { default = pkgs; }; }) ]; } ];
}).config
