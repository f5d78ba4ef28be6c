# Sets of options declared in several modules form one tree.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.net.a = lib.mkOption { default = 1; }; }
    { options.net.b = lib.mkOption { default = 2; }; options.other = lib.mkOption { default = 3; }; }
  ];
}).config
