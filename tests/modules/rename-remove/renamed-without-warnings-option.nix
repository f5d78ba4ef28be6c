# Without a `warnings` option the rename still works (no warning is defined).
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.new = lib.mkOption { type = lib.types.int; }; }
    (lib.mkRenamedOptionModule [ "old" ] [ "new" ])
    { old = 3; }
  ];
}).config.new
