{ lib, ... }: { imports = [ ./b.nix ]; options.n = lib.mkOption { type = lib.types.listOf lib.types.str; }; config.n = [ "a" ]; }
