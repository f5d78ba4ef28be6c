"""sonix: tooling for a server-optimised, NixOS-inspired, image-based Linux distribution."""
