{ imports = [ ./b.nix ]; x = [ "a" ]; }
