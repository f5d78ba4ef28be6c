# An unused removed option asserts nothing.
let lib = import ../../../lib; in
let c = (lib.evalModules {
  modules = [ ../_shared/assertions.nix (lib.mkRemovedOptionModule [ "legacy" ] "Gone.") ];
}).config; in
lib.checkAssertWarn c "fine"
