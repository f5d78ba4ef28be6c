# str: an integer is a type error naming the option, the type, the value and the file.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.s = lib.mkOption { type = lib.types.str; }; } ./str-rejects-int.d/bad.nix ];
}).config
