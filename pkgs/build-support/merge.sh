# Merge unpacked packages ($packages, store paths, in order) into one tree at $out.
# Later packages overwrite earlier ones' files (dpkg would refuse such conflicts; none are
# expected in a consistent Debian set). Directories stay writable for the steps that follow;
# Nix makes the result read-only when it registers the output.
merge_packages() {
  mkdir -p "$out/nix-support"
  for p in $packages; do
    tar -C "$p" --exclude=./nix-support --mode=u+w -cf - . \
      | tar -C "$out" --keep-directory-symlink -xf -
    cat "$p/nix-support/special-modes" >> "$out/nix-support/special-modes.unsorted"
  done
  LC_ALL=C sort -u "$out/nix-support/special-modes.unsorted" > "$out/nix-support/special-modes"
  rm "$out/nix-support/special-modes.unsorted"
  printf '%s\n' $packageNames > "$out/nix-support/packages"
}
