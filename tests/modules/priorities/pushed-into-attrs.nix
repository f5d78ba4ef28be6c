# mkForce on a set of options applies to each option in it.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.net.a = lib.mkOption { type = lib.types.int; }; options.net.b = lib.mkOption { type = lib.types.int; }; }
    { net = { a = 1; b = 2; }; }
    { net = lib.mkForce { a = 10; b = 20; }; }
  ];
}).config
