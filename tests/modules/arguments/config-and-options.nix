# Modules receive `config` (values) and `options` (option records).
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.a = lib.mkOption { type = lib.types.int; default = 1; }; options.r = lib.mkOption { }; }
    ({ config, options, ... }: {
      r = { value = config.a; defined = options.a.isDefined; declaredBy = builtins.length options.a.declarations; };
    })
  ];
}).config.r
