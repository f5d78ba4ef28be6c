# With `_module.check = false`, undeclared definitions are ignored.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.a = lib.mkOption { default = 1; }; }
    { _module.check = false; b = 1; }
  ];
}).config
