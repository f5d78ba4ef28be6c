# Every undeclared definition is listed, with the count.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.a = lib.mkOption { default = 1; }; }
    { b = 1; c = 2; }
  ];
}).config
