# An option whose definitions are all dropped is not defined.
let lib = import ../../../lib; in
let r = lib.evalModules {
  modules = [
    { options.x = lib.mkOption { type = lib.types.int; default = 1; }; options.y = lib.mkOption { type = lib.types.int; }; }
    { y = lib.mkIf false 1; }
  ];
}; in
{ x = r.options.x.isDefined; y = r.options.y.isDefined; }
