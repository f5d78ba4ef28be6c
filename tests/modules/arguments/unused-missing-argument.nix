# Arguments are passed lazily: a missing one only fails when it is used.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ ({ pkgs, ... }: { options.x = lib.mkOption { default = 1; }; }) ];
}).config
