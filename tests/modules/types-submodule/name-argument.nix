# attrsOf submodule passes each entry's name as the `name` argument.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.users = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule ({ name, ... }: { options.home = lib.mkOption { default = "/home/${name}"; }; })); }; }
    { users.alice = { }; users.bob.home = "/srv/bob"; }
  ];
}).config
