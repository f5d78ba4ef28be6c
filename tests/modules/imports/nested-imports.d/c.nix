{ lib, ... }: { options.x = lib.mkOption { type = lib.types.listOf lib.types.str; }; config.x = [ "c" ]; }
