# A module may be a function of the module arguments.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    ({ lib, ... }: { options.x = lib.mkOption { type = lib.types.str; }; })
    ({ ... }: { x = "fn"; })
  ];
}).config
