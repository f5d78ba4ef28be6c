{ lib, ... }: { options.v = lib.mkOption { default = "from string path"; }; }
