# The list of argument names the lib keeps matches the arguments it passes (an internal check).
let lib = import ../../../lib; in
(lib.evalModules {
  specialArgs.extra = 1;
  modules = [ ({ ... }@args: { options.ok = lib.mkOption { default = builtins.sort builtins.lessThan args._names == builtins.attrNames args; }; }) ];
}).config
