# mkOverride takes any number: lower wins.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.x = lib.mkOption { type = lib.types.str; }; }
    { x = lib.mkOverride 70 "seventy"; } { x = lib.mkOverride 60 "sixty"; } { x = lib.mkForce "force"; }
  ];
}).config
