# Builder of pkgs.<name>: one .deb unpacked, with its control files and the file modes the
# Nix store cannot keep. Runs with the host's sh, dpkg-deb and tar (every Debian host has them).
set -eu
mkdir -p "$out/nix-support/debian"
dpkg-deb --control "$deb" "$out/nix-support/debian"
dpkg-deb --fsys-tarfile "$deb" > data.tar
# Nix's seccomp filter refuses setuid/setgid modes in builds; tar then reports "Cannot change
# mode" and exits 2 after extracting everything. Only that error is expected: fail on others.
if ! tar -C "$out" --extract --file data.tar 2> tar.err; then
  if grep -v -e 'Cannot change mode to' -e 'Exiting with failure status' tar.err >&2; then
    exit 1
  fi
fi
# setuid/setgid/sticky bits and non-root owners: the store drops them (every file there is
# root-owned, 0444 or 0555). Record them as "path octal-mode uid gid" for the image build.
tar --list --verbose --numeric-owner --file data.tar | awk '
  function bits(s, r, w, x,   v) {
    v = 0
    if (substr(s, 1, 1) == "r") v += r
    if (substr(s, 2, 1) == "w") v += w
    if (substr(s, 3, 1) ~ /[xst]/) v += x
    return v
  }
  {
    m = $1; split($2, owner, "/")
    special = 0
    if (substr(m, 4, 1) ~ /[sS]/) special += 4
    if (substr(m, 7, 1) ~ /[sS]/) special += 2
    if (substr(m, 10, 1) ~ /[tT]/) special += 1
    if (special == 0 && $2 == "0/0") next
    path = $0; for (i = 0; i < 5; i++) sub(/^[^ ]+ +/, "", path)
    sub(/ -> .*/, "", path)
    sub(/^\./, "", path); sub(/\/$/, "", path)
    if (path == "") path = "/"
    printf "%s %d%d%d%d %s %s\n", path, special, bits(substr(m, 2, 3), 4, 2, 1),
      bits(substr(m, 5, 3), 4, 2, 1), bits(substr(m, 8, 3), 4, 2, 1), owner[1], owner[2]
  }' > "$out/nix-support/special-modes"
