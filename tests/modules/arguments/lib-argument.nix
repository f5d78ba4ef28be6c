# `lib` is the library evalModules came from.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ ({ lib, ... }: { options.v = lib.mkOption { default = lib.version; }; }) ];
}).config
