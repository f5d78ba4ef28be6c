# types.optionType merges types like declarations do (used for _module.freeformType).
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.t = lib.mkOption { type = lib.types.optionType; }; }
    { t = lib.types.enum [ "a" ]; } { t = lib.types.enum [ "b" ]; }
  ];
}).config.t.description
