# Merge unpacked packages ($packages, store paths, in order) into one tree at $out.
# Later packages overwrite earlier ones' files (dpkg would refuse such conflicts; none are
# expected in a consistent Debian set). $excludeFile lists tar patterns (anchored, like
# `./usr/share/locale/*`) of files left out, as dpkg's path-exclude would. Directories stay
# writable for the steps that follow; Nix makes the result read-only when it registers it.
merge_packages() {
  mkdir -p "$out/nix-support"
  for p in $packages; do
    tar -C "$p" --anchored --wildcards --exclude=./nix-support --exclude-from="$excludeFile" \
        --mode=u+w -cf - . \
      | tar -C "$out" --keep-directory-symlink -xf -
    cat "$p/nix-support/special-modes" >> special-modes.all
  done
  LC_ALL=C sort -u special-modes.all | while read -r path mode uid gid; do
    if [ -e "$out$path" ] || [ -L "$out$path" ]; then echo "$path $mode $uid $gid"; fi
  done > "$out/nix-support/special-modes"
  printf '%s\n' $packageNames > "$out/nix-support/packages"
}
