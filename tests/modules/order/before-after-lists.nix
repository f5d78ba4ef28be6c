# mkBefore (500) and mkAfter (1500) place list definitions around the default order (1000).
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.str; }; }
    { l = lib.mkAfter [ "after" ]; } { l = [ "middle" ]; } { l = lib.mkBefore [ "before" ]; }
  ];
}).config
