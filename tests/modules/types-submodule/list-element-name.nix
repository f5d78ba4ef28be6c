# In listOf submodule, `name` is the element's place in the definitions.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf (lib.types.submodule ({ name, ... }: { options.n = lib.mkOption { default = name; }; })); }; }
    { l = [ { } { } ]; }
  ];
}).config
