# Submodules nest.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.a = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule {
        options.b = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule ({ name, ... }: { options.n = lib.mkOption { default = name; }; })); default = { }; };
      }); }; }
    { a.x.b.y = { }; a.z = { }; }
  ];
}).config
