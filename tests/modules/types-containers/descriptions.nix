# Composite descriptions put parentheses only where the phrase would be ambiguous.
let t = (import ../../../lib).types; in
map (x: x.description) [
  (t.listOf (t.listOf t.str))
  (t.attrsOf (t.nullOr t.int))
  (t.nullOr (t.enum [ "a" "b" ]))
  (t.either t.str (t.listOf t.str))
  (t.listOf (t.either t.int t.str))
  (t.attrsOf (t.submodule { }))
  (t.functionTo t.attrs)
  (t.either t.ints.positive t.str)
  (t.listOf t.ints.unsigned)
]
