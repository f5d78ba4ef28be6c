# Forwarded definitions keep their priority.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    ../_shared/assertions.nix
    { options.new = lib.mkOption { type = lib.types.int; }; }
    (lib.mkRenamedOptionModule [ "old" ] [ "new" ])
    { old = lib.mkDefault 1; } { new = 2; }
  ];
}).config.new
