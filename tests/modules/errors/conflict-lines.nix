# A conflict between files shows each file and line with its value.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ ./conflict-lines.d/decl.nix ./conflict-lines.d/a.nix ./conflict-lines.d/b.nix ];
}).config
