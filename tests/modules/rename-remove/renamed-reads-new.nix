# Reading the old name gives the new option's value; forwarded definitions sit where the rename module is.
let lib = import ../../../lib; in
let c = (lib.evalModules {
  modules = [
    { options.new = lib.mkOption { type = lib.types.listOf lib.types.int; }; }
    (lib.mkRenamedOptionModule [ "old" ] [ "new" ])
    { new = [ 1 ]; } { old = [ 2 ]; }
  ];
}).config; in
{ inherit (c) new old; }
