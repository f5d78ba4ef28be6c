# A submodule option's default is dropped when the option is defined; sub-option defaults stay.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption {
        type = lib.types.submodule { options.a = lib.mkOption { default = 0; }; options.b = lib.mkOption { default = 0; }; };
        default = { a = 1; };
      }; }
    { s.b = 2; }
  ];
}).config
