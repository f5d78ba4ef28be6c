# A whole attrsOf value under mkDefault loses to any plain definition of the option.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.m = lib.mkOption { type = lib.types.attrsOf lib.types.int; }; }
    { m = lib.mkDefault { a = 1; b = 1; }; }
    { m = { c = 3; }; }
  ];
}).config
