# coercedTo converts values of the coerced type, then merges by the final type.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.coercedTo lib.types.str (s: [ s ]) (lib.types.listOf lib.types.str); }; }
    { l = "a"; } { l = [ "b" ]; }
  ];
}).config
