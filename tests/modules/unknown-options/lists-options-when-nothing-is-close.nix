# With no close name, the options at that level are listed.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.net.hostName = lib.mkOption { type = lib.types.str; }; options.net.domain = lib.mkOption { type = lib.types.str; }; }
    { net.zzzzzzzz = "x"; }
  ];
}).config
