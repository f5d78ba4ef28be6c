# Inside a submodule the full path of the undeclared option is shown.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.users = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule { options.uid = lib.mkOption { type = lib.types.int; }; }); }; }
    { users.alice = { uid = 1; home = "/home/alice"; }; }
  ];
}).config
