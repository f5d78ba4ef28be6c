# strMatching accepts strings matching the whole pattern.
let lib = import ../../../lib; in
let t = lib.types.strMatching "[a-z]+"; in
{ ok = t.check "abc"; partial = t.check "abc1"; notString = t.check 1; inherit (t) description; }
