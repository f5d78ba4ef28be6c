# A relative string is resolved against specialArgs.modulesPath.
let lib = import ../../../lib; in
(lib.evalModules {
  specialArgs.modulesPath = ./by-string.d;
  modules = [
    ./by-string.d/decl.nix
    ./by-string.d/services/web.nix
    { disabledModules = [ "services/web.nix" ]; }
  ];
}).config
