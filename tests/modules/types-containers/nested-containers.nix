# Containers nest: attrsOf listOf attrsOf.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.n = lib.mkOption { type = with lib.types; attrsOf (listOf (attrsOf int)); }; }
    { n.a = [ { x = 1; } ]; } { n.a = [ { y = lib.mkIf false 2; z = 3; } ]; }
  ];
}).config
