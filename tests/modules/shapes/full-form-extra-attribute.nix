# A module with `config` may not have other top-level configuration attributes.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.x = lib.mkOption { type = lib.types.int; }; }
    { key = "extra"; config.x = 1; y = 2; }
  ];
}).config
