# Reading a removed option fails with the instructions.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ ../_shared/assertions.nix (lib.mkRemovedOptionModule [ "legacy" ] "Gone for good.") { legacy = 1; } ];
}).config.legacy
