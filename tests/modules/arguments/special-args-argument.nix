# The `specialArgs` argument is the whole set given to evalModules.
let lib = import ../../../lib; in
(lib.evalModules {
  specialArgs = { a = 1; b = 2; };
  modules = [ ({ specialArgs, ... }: { options.names = lib.mkOption { default = builtins.attrNames specialArgs; }; }) ];
}).config
