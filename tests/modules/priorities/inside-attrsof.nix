# Priorities apply per attribute of an attrsOf value.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.m = lib.mkOption { type = lib.types.attrsOf lib.types.int; }; }
    { m = { a = lib.mkDefault 1; b = 2; }; }
    { m = { a = 3; b = lib.mkDefault 4; }; }
  ];
}).config
