{ lib, ... }: { options.answer = lib.mkOption { type = lib.types.int; }; }
