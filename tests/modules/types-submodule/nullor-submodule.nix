# nullOr submodule: null, or an evaluated submodule.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.a = lib.mkOption { type = lib.types.nullOr (lib.types.submodule { options.x = lib.mkOption { default = 1; }; }); default = null; };
      options.b = lib.mkOption { type = lib.types.nullOr (lib.types.submodule { options.x = lib.mkOption { default = 1; }; }); default = null; }; }
    { b = { }; }
  ];
}).config
