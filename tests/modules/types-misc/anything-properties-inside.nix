# anything discharges mkIf and priorities inside nested sets.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.a = lib.mkOption { type = lib.types.anything; }; } { a = { x = lib.mkIf false 1; y = lib.mkDefault 1; }; } { a.y = 2; } ];
}).config
