# Files that the configuration puts into the image. Every generated file (units, networkd
# files, sysusers.d, tmpfiles.d, repart definitions, the factory /etc) goes through these two
# options, and the image builder writes them into the trees; modules never build anything.
{ lib, config, ... }:
let
  inherit (lib) mkOption types;

  fileType = types.submodule ({ name, config, ... }: {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Whether the file is created.";
      };
      text = mkOption {
        type = types.nullOr types.lines;
        default = null;
        description = "The file's contents.";
      };
      source = mkOption {
        type = types.nullOr types.path;
        default = null;
        description = "A file (or directory) to copy; used when `text` is null.";
      };
      symlink = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "../foo.service";
        description = "Make the path a symbolic link to this target instead of a file.";
      };
      mode = mkOption {
        type = types.strMatching "[0-7]{3,4}";
        default = "0644";
        example = "0755";
        description = "Permissions of the file (octal).";
      };
    };
  });

  # The attrset that the builder reads: one entry per enabled file, with exactly one kind.
  manifest = where: files: lib.mapAttrs (path: f:
    let kinds = lib.filter (k: f.${k} != null) [ "text" "source" "symlink" ]; in
    if lib.length kinds != 1 then
      throw "${where}.\"${path}\" must set exactly one of `text`, `source` or `symlink` (it sets ${if kinds == [ ] then "none" else lib.concatStringsSep ", " kinds})."
    else if lib.hasPrefix "/" path || lib.hasInfix ".." path then
      throw "${where}.\"${path}\": paths are relative to the tree and must not contain `..`."
    else {
      inherit (f) mode;
      kind = lib.head kinds;
      # Interpolating copies a Nix path into the store (the builder runs sandboxed and only
      # sees the store); strings and store paths pass through.
      value = "${f.${lib.head kinds}}";
    }) (lib.filterAttrs (_: f: f.enable) files);
in
{
  options.system.usrFiles = mkOption {
    type = types.attrsOf fileType;
    default = { };
    example = lib.literalExpression ''
      { "lib/systemd/system/hello.service".text = "[Service]\nExecStart=/usr/bin/echo hello\n"; }
    '';
    description = ''
      Files in the image's `/usr`, by path relative to `/usr`. The usr partition is read-only and
      verity-protected, so this is where vendor configuration (units, networkd files, tmpfiles.d,
      sysusers.d) belongs.
    '';
  };

  options.boot.initrd.usrFiles = mkOption {
    type = types.attrsOf fileType;
    default = { };
    description = "Files in the initrd's `/usr`, by path relative to `/usr` (units, repart definitions, ...).";
  };

  options.system.build = mkOption {
    type = types.lazyAttrsOf types.raw;
    default = { };
    description = ''
      Build results of this configuration: `usr` (the /usr tree), `initrd`, `uki`, `image`
      (the disk image and release artifacts), `runvm` (a script that boots the image), `toplevel`.
    '';
  };

  options.system.buildManifest = mkOption {
    type = types.raw;
    readOnly = true;
    internal = true;
    description = "What the image builder reads: the file lists in normal form.";
  };

  config.system.buildManifest = {
    usrFiles = manifest "system.usrFiles" config.system.usrFiles;
    initrdUsrFiles = manifest "boot.initrd.usrFiles" config.boot.initrd.usrFiles;
  };
}
