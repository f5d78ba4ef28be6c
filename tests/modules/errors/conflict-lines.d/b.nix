{ config, ... }:
{
  services.web = {
    root = "/srv/b";
  };
}
