# specialArgs are passed to every module.
let lib = import ../../../lib; in
(lib.evalModules {
  specialArgs = { answer = 42; };
  modules = [ ({ answer, ... }: { options.x = lib.mkOption { default = answer; }; }) ];
}).config
