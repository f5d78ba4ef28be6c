# Using the old name adds a warning naming both options and the file.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    ../_shared/assertions.nix
    { options.new = lib.mkOption { type = lib.types.int; default = 1; }; }
    (lib.mkRenamedOptionModule [ "old" ] [ "new" ])
    { _file = "user.nix"; old = 2; }
  ];
}).config.warnings
