# Merged submoduleWith declarations keep both modules and specialArgs.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submoduleWith { specialArgs.a = 1; modules = [ ({ a, ... }: { options.a = lib.mkOption { default = a; }; }) ]; }; default = { }; }; }
    { options.s = lib.mkOption { type = lib.types.submoduleWith { specialArgs.b = 2; modules = [ ({ b, ... }: { options.b = lib.mkOption { default = b; }; }) ]; }; }; }
  ];
}).config
