# moduleType lets a configuration hold variants of itself (as NixOS specialisations do).
let lib = import ../../../lib; in
let
  base = { moduleType, ... }: {
    options.packages = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; };
    options.variants = lib.mkOption { type = lib.types.lazyAttrsOf moduleType; default = { }; };
  };
  c = (lib.evalModules {
    modules = [ base { packages = [ "a" ]; variants.debug = { packages = [ "gdb" ]; }; } ];
  }).config;
in
{ main = c.packages; debug = c.variants.debug.packages; nested = builtins.attrNames c.variants.debug.variants; }
