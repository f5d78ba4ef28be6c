# checkAssertWarn lists every failed assertion, not just the first.
let lib = import ../../../lib; in
let c = (lib.evalModules {
  modules = [
    ../_shared/assertions.nix
    ({ config, ... }: { assertions = [
      { assertion = false; message = "first is wrong"; }
      { assertion = true; message = "this one holds"; }
      { assertion = 1 > 2; message = "second is wrong"; }
    ]; })
  ];
}).config; in
lib.checkAssertWarn c null
