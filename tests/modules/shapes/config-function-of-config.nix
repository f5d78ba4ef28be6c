# A module's config may depend on other options through the `config` argument.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.a = lib.mkOption { type = lib.types.int; }; options.b = lib.mkOption { type = lib.types.int; }; }
    ({ config, ... }: { b = config.a * 2; })
    { a = 21; }
  ];
}).config
