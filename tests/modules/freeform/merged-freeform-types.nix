# Two freeform types merge like option types do, submodules included.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { freeformType = lib.types.attrsOf (lib.types.submodule { options.foo = lib.mkOption { default = 10; }; }); }
    { freeformType = lib.types.attrsOf (lib.types.submodule { options.bar = lib.mkOption { default = 20; }; }); }
    { xxx = { }; }
  ];
}).config
