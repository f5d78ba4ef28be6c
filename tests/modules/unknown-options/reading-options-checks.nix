# Reading `options` checks for undeclared definitions as well as reading `config`.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.a = lib.mkOption { default = 1; }; } { b = 2; } ];
}).options.a.value
