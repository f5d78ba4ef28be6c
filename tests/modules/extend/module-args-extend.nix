# Modules get `extendModules` and `moduleType` as arguments, as in NixOS.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ ({ extendModules, moduleType, ... }: {
    options.checks = lib.mkOption { default = [ (builtins.isFunction extendModules) moduleType.name ]; };
  }) ];
}).config
