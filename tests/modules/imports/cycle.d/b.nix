{ imports = [ ./a.nix ]; n = [ "b" ]; }
