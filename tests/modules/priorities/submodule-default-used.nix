# Without definitions, a submodule option's default is evaluated as the submodule's config.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption {
        type = lib.types.submodule { options.a = lib.mkOption { default = 0; }; options.b = lib.mkOption { default = 0; }; };
        default = { a = 1; };
      }; }
  ];
}).config
