# An imported function receives the module arguments, including specialArgs.
let lib = import ../../../lib; in
(lib.evalModules {
  specialArgs.site = "berlin";
  modules = [ { imports = [ ({ site, lib, ... }: { options.where = lib.mkOption { default = site; }; }) ]; } ];
}).config
