# The option record tells the winning priority; with no definition it is 9999.
let lib = import ../../../lib; in
let o = (lib.evalModules {
  modules = [
    { options.a = lib.mkOption { default = 1; }; options.b = lib.mkOption { }; options.c = lib.mkOption { }; options.d = lib.mkOption { }; }
    { b = lib.mkDefault 1; c = lib.mkForce 1; }
  ];
}).options; in
map (n: o.${n}.highestPrio) [ "a" "b" "c" "d" ]
