# `_module.args` provides arguments that modules may compute from config.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.name = lib.mkOption { type = lib.types.str; }; }
    ({ config, ... }: { _module.args.greeting = "hello ${config.name}"; name = "world"; })
    ({ greeting, ... }: { options.out = lib.mkOption { default = greeting; }; })
  ];
}).config
