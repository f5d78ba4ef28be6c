# The suggestion distance counts a swap of neighbours as one edit.
let lib = import ../../../lib; in
map (p: lib.levenshtein (builtins.elemAt p 0) (builtins.elemAt p 1)) [ [ "enabel" "enable" ] [ "kitten" "sitting" ] [ "" "abc" ] [ "same" "same" ] [ "ab" "ba" ] ]
