# `imports` may depend on specialArgs (but not on config).
let lib = import ../../../lib; in
(lib.evalModules {
  specialArgs.extra = [ { options.y = lib.mkOption { default = "imported"; }; } ];
  modules = [ ({ extra, ... }: { imports = extra; }) ];
}).config
