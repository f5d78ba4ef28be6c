{ pkgs, lib, ... }: { options.x = lib.mkOption { default = pkgs.hello; }; }
