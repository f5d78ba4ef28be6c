# separatedString joins with any separator and says so in its description.
let lib = import ../../../lib; in
let r = lib.evalModules {
  modules = [ { options.p = lib.mkOption { type = lib.types.separatedString ":"; }; } { p = "/bin"; } { p = "/usr/bin"; } ];
}; in
{ inherit (r.config) p; description = r.options.p.type.description; lines = lib.types.lines.description; }
