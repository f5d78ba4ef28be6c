# nonEmptyStr accepts text and rejects blank strings.
let lib = import ../../../lib; in
let
  t = lib.types.nonEmptyStr;
in
{ ok = t.check "x"; empty = t.check ""; blank = t.check " \t\n"; description = t.description; }
