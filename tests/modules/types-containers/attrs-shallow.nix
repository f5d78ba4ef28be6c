# attrs merges definitions shallowly: later attributes replace earlier ones.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.a = lib.mkOption { type = lib.types.attrs; }; } { a = { x.y = 1; k = 1; }; } { a = { x.z = 2; }; } ];
}).config
