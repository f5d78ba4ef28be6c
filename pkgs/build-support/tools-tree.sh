# Builder of `tools`: the locked tools packages merged, plus the mount points that
# run-in-tools binds onto this read-only root.
set -eu
. "$mergeScript"
merge_packages
mkdir -p "$out/nix/store" "$out/dev" "$out/proc" "$out/sys" "$out/tmp" "$out/run" "$out/var/tmp"
# awk is an alternative (no package ships /usr/bin/awk): point it at mawk like its postinst.
[ -e "$out/usr/bin/awk" ] || ln -s mawk "$out/usr/bin/awk"
