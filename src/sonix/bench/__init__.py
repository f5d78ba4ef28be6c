"""What the boot benchmark (issue 8) compares sonix with, built reproducibly from pkgs/lock.json.

- `peer`: the same Debian 13 packages installed the way a Debian user would (dpkg and apt with
  maintainer scripts, initramfs-tools initrd, ext4 root, systemd-boot): `build_peer_image`.
- `floor`: the same kernel booted straight into a trivial init: `build_floor`.

Both cache their result under the output directory, keyed by the lock file's contents (and the
builder's own inputs), so a second call returns at once. See docs/benchmarks/peer.md.
"""
