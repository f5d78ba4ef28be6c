# The usual list helpers behave as in nixpkgs' lib.
let lib = import ../../../lib; in
{
  optional = [ (lib.optional true 1) (lib.optional false 1) ];
  optionals = lib.optionals true [ 1 2 ];
  toList = [ (lib.toList 1) (lib.toList [ 1 ]) ];
  flatten = lib.flatten [ 1 [ 2 [ 3 ] ] ];
  unique = lib.unique [ 3 1 3 2 1 ];
  range = lib.range 2 5;
  last = lib.last [ 1 2 3 ];
  init = lib.init [ 1 2 3 ];
  take = lib.take 2 [ 1 2 3 ];
  drop = lib.drop 2 [ 1 2 3 ];
  sublist = lib.sublist 1 5 [ 1 2 3 ];
  reverseList = lib.reverseList [ 1 2 3 ];
  foldr = lib.foldr (x: acc: "${toString x}${acc}") "" [ 1 2 3 ];
  findFirst = [ (lib.findFirst (x: x > 1) null [ 1 2 3 ]) (lib.findFirst (x: x > 5) null [ 1 ]) ];
  imap1 = lib.imap1 (i: x: i * x) [ 5 5 ];
  count = lib.count (x: x == 1) [ 1 2 1 ];
  subtractLists = lib.subtractLists [ 2 ] [ 1 2 3 ];
  zipLists = lib.zipLists [ 1 2 ] [ "a" "b" "c" ];
  groupBy' = lib.groupBy' (a: b: a + b) 0 (x: if x > 2 then "big" else "small") [ 1 2 3 4 ];
  sortOn = lib.sortOn builtins.stringLength [ "ccc" "a" "bb" ];
}
