# singleLineStr takes one line, dropping a final newline.
let lib = import ../../../lib; in
let t = lib.types.singleLineStr; in
{
  checks = map t.check [ "one" "one\n" "one\ntwo" "" ];
  value = (lib.evalModules { modules = [ { options.s = lib.mkOption { type = t; }; } { s = "line\n"; } ]; }).config.s;
}
