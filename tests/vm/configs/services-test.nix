# The machine of tests/vm/test_services.py (issue 7): examples/minimal.nix with the test
# backdoor and the service modules: sshd (the admin logs in with the throwaway key of
# tests/vm/fixtures/ssh), the firewall, resolved, timesyncd, journald forwarding and upload,
# and nginx with its health check. The VM's user network is restricted: nothing outside the
# host's forwards is reachable, so the DNS and NTP servers below are never answered.
{ lib, ... }:
{
  imports = [
    ../../../examples/minimal.nix
    ../../../modules/testing/backdoor.nix
    ../../../modules/services/openssh.nix
    ../../../modules/services/firewall.nix
    ../../../modules/services/resolved.nix
    ../../../modules/services/timesyncd.nix
    ../../../modules/services/nginx.nix
  ];

  services.openssh.enable = true;
  users.users.admin.openssh.authorizedKeys.keys = [ (lib.removeSuffix "\n" (builtins.readFile ../fixtures/ssh/snakeoil_ed25519.pub)) ];

  services.resolved = {
    enable = true;
    dns = [ "192.0.2.53" ];
    domains = [ "sonix.test" ];
  };

  services.timesyncd = {
    enable = true;
    servers = [ "10.0.2.2" ];
    fallbackServers = [ ];
  };

  services.journald = {
    maxRetentionSec = "1month";
    # Warnings and worse also go to the kernel log, which the test reads with dmesg.
    forwardToKMsg = true;
    extraConfig = "MaxLevelKMsg=warning\n";
    # To the sink below, on the machine itself (nothing outside is reachable).
    upload = { enable = true; url = "http://127.0.0.1:19532"; };
  };

  # Test only: a systemd-journal-remote server that keeps what the uploader sends in
  # /var/lib/journal-sink (plain HTTP on loopback).
  systemd.services.journal-sink = {
    description = "A journal-remote sink for the upload test";
    before = [ "systemd-journal-upload.service" ];
    serviceConfig = {
      ExecStart = "/usr/lib/systemd/systemd-journal-remote --listen-http=127.0.0.1:19532 --output=/var/lib/journal-sink/";
      StateDirectory = "journal-sink";
    };
  };
  systemd.targets.multi-user.wants = [ "journal-sink.service" ];

  services.nginx = {
    enable = true;
    virtualHosts.test = {
      default = true;
      root = "/usr/share/sonix-test/www";
      locations."/".tryFiles = "$uri $uri/ =404";
    };
  };
  system.usrFiles."share/sonix-test/www/index.html".text = "hello from nginx\n";
}
