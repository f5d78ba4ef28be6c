{
  services.web.root = "/srv/a";
}
