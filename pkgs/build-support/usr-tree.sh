# Builder of usrTree: the closure's packages merged into one usr-merged root, then what their
# maintainer scripts would have done (src/sonix/in_nix_build/maintscripts.py, run with the locked
# tools' python3 through bubblewrap).
set -eu
. "$mergeScript"
merge_packages
"$runInTools" python3 "$maintscripts" "$out" $packages
