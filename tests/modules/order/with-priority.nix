# Order and priority combine: the lower priority's definitions are dropped whatever their order.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.str; }; }
    { l = lib.mkBefore (lib.mkDefault [ "dropped" ]); } { l = lib.mkAfter [ "b" ]; } { l = [ "a" ]; }
  ];
}).config
