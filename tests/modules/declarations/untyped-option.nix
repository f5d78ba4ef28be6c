# An option without a type is `unspecified`: lists concatenate, sets merge.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { }; options.s = lib.mkOption { }; }
    { l = [ 1 ]; s.a = 1; }
    { l = [ 2 ]; s.b = 2; }
  ];
}).config
