# `_module.args` may be defined with mkIf and mkDefault like any option.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { _module.args.level = lib.mkDefault "default"; }
    { _module.args.level = lib.mkIf true "set"; }
    ({ level, ... }: { options.level = lib.mkOption { default = level; }; })
  ];
}).config
