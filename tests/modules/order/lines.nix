# Order applies to lines too.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.script = lib.mkOption { type = lib.types.lines; }; }
    { script = lib.mkAfter "exit 0"; } { script = "run"; } { script = lib.mkBefore "set -e"; }
  ];
}).config
