# The machine of tests/vm/test_containers.py (issue 7, part two): examples/minimal.nix with
# the test backdoor, a podman container that runs an image built from locked packages
# (python3's http.server, published on port 8080, reached from the host through a QEMU port
# forward), a registry container that is declared but never started (the VM has no way out),
# and fwupd with a local firmware directory and automatic updates in the maintenance window
# (strategy `off`: the test asks for the reboot decision without rebooting), and an nspawn
# machine `box` whose content is its own sonix configuration.
{ pkgs, ... }:
{
  imports = [
    ../../../examples/minimal.nix
    ../../../modules/testing/backdoor.nix
    ../../../modules/services/oci-containers.nix
    ../../../modules/services/fwupd.nix
    ../../../modules/services/nspawn-containers.nix
  ];

  # An nspawn machine: its own sonix configuration (a user, a web page served by python3),
  # a point-to-point veth, a writable bind mount and resource limits.
  containers.box = {
    config = { ... }: {
      users.users.app = { isNormalUser = true; uid = 1000; };
      system.usrFiles."share/sonix-box/www/index.html".text = "hello from an nspawn machine\n";
      systemd.services.box-web = {
        description = "The test page of the box container";
        serviceConfig.ExecStart = "/usr/bin/python3 -m http.server 8000 --directory /usr/share/sonix-box/www";
      };
      systemd.targets.multi-user.wants = [ "box-web.service" ];
    };
    hostAddress = "10.231.0.1";
    localAddress = "10.231.0.2";
    bindMounts."/srv/shared" = { hostPath = "/var/lib/box-shared"; isReadOnly = false; };
    memoryMax = "256M";
    tasksMax = 512;
  };
  systemd.tmpfiles.rules = [ "d /var/lib/box-shared 0755 root root -" ];

  oci.images.web = {
    packages = [ pkgs.python3 ];
    entrypoint = [ "/usr/bin/python3" "-m" "http.server" ];
    cmd = [ "8080" "--directory" "/srv" ];
    exposedPorts = [ "8080/tcp" ];
  };

  oci.containers.web = {
    imageFile = "web";
    ports = [ "8080:8080" ];
    volumes = [ "/usr/share/sonix-test/www:/srv:ro" ];
    environment.GREETING = "hello from a container";
  };
  system.usrFiles."share/sonix-test/www/index.html".text = "hello from a sonix container\n";

  # Declared, not started: its unit must exist and name the registry image.
  oci.containers.registry = {
    image = "docker.io/library/busybox:1.37";
    cmd = [ "sleep" "infinity" ];
    autoStart = false;
  };

  hardware.fwupd = {
    enable = true;
    localSource = ../fixtures/containers/firmware;
    automaticUpdates.enable = true;
  };

  updates = {
    enable = true;
    channel = "http://10.0.2.100/";
    trustedKeys = [ ../fixtures/containers/no-channel-key.gpg ];
    strategy = "off";
    firstCheckDelay = "1h";
    randomizedDelay = "0";
  };
}
