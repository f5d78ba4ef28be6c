# The core modules: always loaded. Everything else is imported on demand by configurations.
[
  ./misc/assertions.nix
  ./system/files.nix
  ./system/image.nix
  ./system/build.nix
]
