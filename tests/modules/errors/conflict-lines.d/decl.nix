{ lib, ... }: { options.services.web.root = lib.mkOption { type = lib.types.path; }; }
