# Declarations with different separators do not combine.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { _file = "a.nix"; options.p = lib.mkOption { type = lib.types.commas; }; }
    { _file = "b.nix"; options.p = lib.mkOption { type = lib.types.lines; }; }
  ];
}).config
