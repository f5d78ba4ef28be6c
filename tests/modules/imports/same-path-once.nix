# A path imported from several modules is evaluated once (its key is its path).
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { imports = [ ./same-path-once.d/list.nix ./same-path-once.d/list.nix ]; }
    { imports = [ ./same-path-once.d/list.nix ]; }
    ./same-path-once.d/list.nix
  ];
}).config
