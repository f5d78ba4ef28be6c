# Options declared below a submodule-typed option are added to its submodule.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.users = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule { options.uid = lib.mkOption { type = lib.types.int; }; }); default = { }; }; }
    { options.users = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule ({ name, ... }: { options.home = lib.mkOption { default = "/home/${name}"; }; })); }; }
    { users.bob.uid = 7; }
  ];
}).config
