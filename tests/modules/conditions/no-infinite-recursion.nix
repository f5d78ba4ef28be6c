# A condition reading an option that the same module defines elsewhere does not loop.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.a = lib.mkOption { type = lib.types.bool; default = false; }; options.b = lib.mkOption { type = lib.types.bool; default = false; }; }
    ({ config, ... }: lib.mkMerge [ { a = true; } (lib.mkIf config.a { b = true; }) ])
  ];
}).config
