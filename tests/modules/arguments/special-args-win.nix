# When both provide an argument, specialArgs wins over `_module.args`.
let lib = import ../../../lib; in
(lib.evalModules {
  specialArgs.who = "special";
  modules = [
    { _module.args.who = "module"; }
    ({ who, ... }: { options.who = lib.mkOption { default = who; }; })
  ];
}).config
