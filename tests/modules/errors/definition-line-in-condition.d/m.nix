{ lib, ... }:
{
  config = lib.mkIf true (lib.mkMerge [
    {
      n = "one";
    }
  ]);
}
