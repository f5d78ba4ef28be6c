# ints.unsigned allows 0, ints.positive does not.
let inherit ((import ../../../lib).types) ints; in
{
  unsigned = map ints.unsigned.check [ (-1) 0 1 ];
  positive = map ints.positive.check [ (-1) 0 1 ];
  descriptions = [ ints.unsigned.description ints.positive.description ];
}
