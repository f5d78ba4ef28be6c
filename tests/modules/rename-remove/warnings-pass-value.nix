# Warnings do not stop evaluation: checkAssertWarn returns the value.
let lib = import ../../../lib; in
let c = (lib.evalModules {
  modules = [ ../_shared/assertions.nix { warnings = [ "careful" ]; } ];
}).config; in
{ value = lib.checkAssertWarn c 42; inherit (c) warnings; }
