# Without a definition of the old name there is no warning, and the new option keeps its default.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    ../_shared/assertions.nix
    { options.new = lib.mkOption { type = lib.types.int; default = 1; }; }
    (lib.mkRenamedOptionModule [ "old" ] [ "new" ])
  ];
}).config
