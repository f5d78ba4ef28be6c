# lazyAttrsOf keeps such keys; reading one fails.
let lib = import ../../../lib; in
let m = (lib.evalModules {
  modules = [
    { options.m = lib.mkOption { type = lib.types.lazyAttrsOf lib.types.int; }; }
    { m = { a = 1; b = lib.mkIf false 2; }; }
  ];
}).config.m; in
{ names = builtins.attrNames m; a = m.a; b = (builtins.tryEval m.b).success; }
