# A module disabled by path is not evaluated.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    ./by-path.d/decl.nix
    ./by-path.d/extra.nix
    { disabledModules = [ ./by-path.d/extra.nix ]; }
  ];
}).config
