# mkRenamedOptionModule forwards definitions of the old name to the new one.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    ../_shared/assertions.nix
    { options.new.port = lib.mkOption { type = lib.types.port; default = 1; }; }
    (lib.mkRenamedOptionModule [ "old" "port" ] [ "new" "port" ])
    { old.port = 8080; }
  ];
}).config.new
