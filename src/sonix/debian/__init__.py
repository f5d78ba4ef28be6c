"""Debian 13 ("trixie") packages as locked, reproducible inputs.

- `apt`: a private apt configuration (suite trixie, no recommends) against the mirror the host's
  apt already uses, and one function per apt call.
- `control`: deb822 stanzas, dependency fields and Debian version comparison.
- `lock`: the package roots (pkgs/packages.toml) and the lock file (pkgs/lock.json).
- `fetch`: missing .debs into the Nix store as fixed-output paths, in one apt run.

What maintainer scripts would have done (passwd, alternatives, ldconfig, depmod, sysusers) runs
inside the Nix build, so it is `sonix.in_nix_build.maintscripts`, not here.
"""
