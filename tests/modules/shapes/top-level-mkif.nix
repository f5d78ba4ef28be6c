# A module may be a property itself: mkIf around the whole shorthand module.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.a = lib.mkOption { default = 0; }; options.b = lib.mkOption { default = 0; }; }
    (lib.mkIf true { a = 1; })
    (lib.mkIf false { b = 1; })
  ];
}).config
