# Defining a set of options with a non-attribute-set value is an error naming the path.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.net.host = lib.mkOption { type = lib.types.str; }; }
    { net = "example.org"; }
  ];
}).config
