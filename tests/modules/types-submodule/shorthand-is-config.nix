# With `submodule`, an attribute-set definition is config, so `options` there is an option name.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submodule { options.options = lib.mkOption { type = lib.types.str; }; }; }; }
    { s.options = "--fast"; }
  ];
}).config
