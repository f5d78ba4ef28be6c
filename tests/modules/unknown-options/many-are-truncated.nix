# More than ten undeclared definitions: the first ten are shown, then a count.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.keep = lib.mkOption { default = 1; }; }
    (builtins.listToAttrs (builtins.genList (i: { name = "u${toString (i + 10)}"; value = i; }) 12))
  ];
}).config
