{ lib, ... }: {
  options.items = lib.mkOption { type = lib.types.listOf lib.types.int; };
  config.items = [ 1 ];
}
