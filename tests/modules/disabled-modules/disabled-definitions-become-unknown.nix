# Definitions of a disabled module's options become unknown-option errors.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    ./disabled-definitions-become-unknown.d/decl.nix
    { disabledModules = [ ./disabled-definitions-become-unknown.d/decl.nix ]; }
    { answer = 42; }
  ];
}).config
