{ imports = [ ./child.nix ]; l = [ "parent" ]; }
