{ lib, ... }: { imports = [ ./c.nix ]; x = [ "b" ]; }
