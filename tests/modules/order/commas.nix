# commas joins in order with ",".
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.c = lib.mkOption { type = lib.types.commas; }; }
    { c = "b"; } { c = lib.mkBefore "a"; } { c = lib.mkAfter "c"; }
  ];
}).config
