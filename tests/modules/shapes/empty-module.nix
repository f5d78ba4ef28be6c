# An empty module, and a function returning one, change nothing.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { } ({ ... }: { }) { options.x = lib.mkOption { default = 1; }; } ];
}).config
