# An assertion entry must have a message (the shared module declares both fields).
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ ../_shared/assertions.nix { assertions = [ { assertion = true; } ]; } ];
}).config.assertions
