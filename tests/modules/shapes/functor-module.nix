# An attribute set with `__functor` is a module function too.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.x = lib.mkOption { type = lib.types.int; }; }
    { __functor = self: { ... }: { x = self.n; }; n = 7; }
  ];
}).config
