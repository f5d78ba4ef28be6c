# types.isType tells a type by name.
let t = (import ../../../lib).types; in
[ (t.isType "str" t.str) (t.isType "int" t.str) (t.isType "str" "str") ]
