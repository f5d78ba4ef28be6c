# A submodule whose modules throw when evaluated without definitions is still described in errors.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submodule ({ name, ... }: {
        config = if name == "<name>" then throw "only for real entries" else { };
      }); }; }
    { _file = "s.nix"; s = 3; }
  ];
}).config
