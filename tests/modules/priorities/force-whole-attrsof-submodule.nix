# mkForce on a whole attrsOf value replaces every other definition of it.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.users = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule { options.uid = lib.mkOption { type = lib.types.int; default = 0; }; }); }; }
    { users.a.uid = 1; users.b = { }; }
    { users = lib.mkForce { c.uid = 3; }; }
  ];
}).config
