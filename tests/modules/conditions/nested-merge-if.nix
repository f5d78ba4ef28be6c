# mkMerge and mkIf nest freely, at a set and at an option.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.int; }; }
    { config = lib.mkIf true (lib.mkMerge [ { l = lib.mkMerge [ [ 1 ] (lib.mkIf true [ 2 ]) ]; } (lib.mkIf false { l = [ 3 ]; }) ]); }
  ];
}).config
