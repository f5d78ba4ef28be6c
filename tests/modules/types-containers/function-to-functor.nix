# functionTo accepts attribute sets with `__functor`.
let lib = import ../../../lib; in
let f = (lib.evalModules {
  modules = [
    { options.f = lib.mkOption { type = lib.types.functionTo lib.types.int; }; }
    { f = { __functor = self: x: x + self.n; n = 1; }; }
  ];
}).config.f; in
f 41
