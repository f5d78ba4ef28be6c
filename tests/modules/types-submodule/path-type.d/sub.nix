{ lib, ... }: { options.from = lib.mkOption { default = "file"; }; }
