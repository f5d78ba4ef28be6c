# systemd units: `systemd.{services,sockets,timers,targets,paths,slices,mounts}` for the system
# and `boot.initrd.systemd.*` for stage 1, rendered into /usr/lib/systemd/system of the image or
# of the initrd. Units are enabled only from the depending side: `wants`/`requires` of a unit
# become `<unit>.wants/` / `<unit>.requires/` links; `wantedBy`/`requiredBy` are errors that say
# which `wants` line to write instead. Packaged units' [Install] sections are never used: the
# image ships a preset that disables everything (PID 1 runs preset-all on first boot).
{ lib, config, ... }:
let
  inherit (lib) mkOption types concatStringsSep concatMap attrNames filter optional optionals
    optionalAttrs nameValuePair listToAttrs any;
  sd = import ./lib.nix { inherit lib; };
  # What extends PCR 15 (boot.secureBoot.measurePcr15).
  pcr15Units = [ "systemd-pcrmachine.service" "systemd-pcrfs-root.service" "systemd-pcrfs@.service" ];

  # The unit kinds kept in attribute sets, by option name.
  kinds = {
    services = { suffix = "service"; section = "Service"; };
    sockets = { suffix = "socket"; section = "Socket"; };
    timers = { suffix = "timer"; section = "Timer"; };
    targets = { suffix = "target"; section = null; };
    paths = { suffix = "path"; section = "Path"; };
    slices = { suffix = "slice"; section = "Slice"; };
  };
  kindOfSuffix = listToAttrs (map (k: nameValuePair kinds.${k}.suffix k) (attrNames kinds));

  # Where the `wants` line for a dependency goes: "multi-user.target" under "systemd" is
  # `systemd.targets.multi-user`.
  optionOfUnit = prefix: unit:
    let m = builtins.match "(.+)\\.([a-z]+)" unit; in
    if m != null && kindOfSuffix ? ${builtins.elemAt m 1}
    then "${prefix}.${kindOfSuffix.${builtins.elemAt m 1}}.${lib.escapeNixIdentifier (builtins.elemAt m 0)}"
    else null;

  unitList = types.listOf types.str;

  # ---- options every unit has ----------------------------------------------------------
  commonOptions = { prefix, kind }: { name, ... }: {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Whether the unit is installed. A disabled unit gets no file, no links, and is left
          out of the `wants`/`requires` of the other units of this configuration.
        '';
      };
      description = mkOption {
        type = types.str;
        default = "";
        example = "Web server";
        description = "`Description=` of the unit: a short human-readable title.";
      };
      documentation = mkOption {
        type = unitList;
        default = [ ];
        example = [ "man:nginx(8)" "https://nginx.org/en/docs/" ];
        description = "`Documentation=` URIs of the unit.";
      };
      wants = mkOption {
        type = unitList;
        default = [ ];
        example = [ "nginx.service" ];
        description = ''
          Units this unit wants: each becomes a link in `<this unit>.wants/`, the only way units
          are enabled in sonix (the `Wants=` dependency; it does not order, see `after`). This
          works for packaged units too, e.g. `${prefix}.targets.multi-user.wants`.
        '';
      };
      requires = mkOption {
        type = unitList;
        default = [ ];
        example = [ "var-lib-data.mount" ];
        description = ''
          Units this unit requires: each becomes a link in `<this unit>.requires/` (the
          `Requires=` dependency: if one fails to start, this unit fails too).
        '';
      };
      requisite = mkOption {
        type = unitList;
        default = [ ];
        description = "`Requisite=`: units that must already be active; they are not started.";
      };
      after = mkOption {
        type = unitList;
        default = [ ];
        example = [ "network-online.target" ];
        description = "`After=`: start this unit after these units (ordering only).";
      };
      before = mkOption {
        type = unitList;
        default = [ ];
        description = "`Before=`: start this unit before these units (ordering only).";
      };
      bindsTo = mkOption {
        type = unitList;
        default = [ ];
        description = "`BindsTo=`: like `requires`, and this unit stops when one of them stops.";
      };
      partOf = mkOption {
        type = unitList;
        default = [ ];
        description = "`PartOf=`: stopping or restarting one of these units does the same to this one.";
      };
      conflicts = mkOption {
        type = unitList;
        default = [ ];
        description = "`Conflicts=`: starting this unit stops these units, and the other way round.";
      };
      onFailure = mkOption {
        type = unitList;
        default = [ ];
        description = "`OnFailure=`: units started when this unit enters the failed state.";
      };
      unitConfig = sd.sectionOption {
        section = "Unit";
        what = "the unit";
        example = { ConditionPathExists = "!/etc/initial-setup-done"; StartLimitBurst = 5; };
      };
      overrideStrategy = mkOption {
        type = types.enum [ "asUnit" "asDropin" ];
        default = "asUnit";
        description = ''
          How the unit's settings reach systemd. `asUnit` writes the whole unit file; use it for
          units this configuration defines. `asDropin` writes `<unit>.d/overrides.conf`, which
          changes a packaged unit without replacing it. A unit that sets nothing but `wants` and
          `requires` gets no file at all, only its links.
        '';
      };
      # Hidden: defining them is an error that shows the `wants` line to write instead.
      wantedBy = mkOption {
        type = unitList;
        default = [ ];
        visible = false;
        description = "Not supported: units are enabled from the depending side (`wants`).";
      };
      requiredBy = mkOption {
        type = unitList;
        default = [ ];
        visible = false;
        description = "Not supported: units are required from the depending side (`requires`).";
      };
    };
  };

  # ---- options per kind ------------------------------------------------------------------
  serviceOptions = { name, ... }: {
    options = {
      serviceConfig = sd.sectionOption {
        section = "Service";
        what = "the service";
        example = { Type = "notify"; ExecStart = "/usr/sbin/nginx -g 'daemon off;'"; Restart = "on-failure"; };
      };
      environment = mkOption {
        type = types.attrsOf (types.nullOr (types.either types.str types.int));
        default = { };
        example = { LANG = "C.UTF-8"; GOMAXPROCS = 2; };
        description = "Environment variables of the service's processes (`Environment=` lines; `null` leaves one out).";
      };
      script = mkOption {
        type = types.lines;
        default = "";
        example = "echo hello > /run/hello";
        description = ''
          Shell commands (bash, `set -e`) that are the service's main process: written to
          `/usr/lib/sonix/scripts/<name>-start` and used as `ExecStart=`. Don't set
          `serviceConfig.ExecStart` as well.
        '';
      };
      preStart = mkOption {
        type = types.lines;
        default = "";
        description = "Shell commands (bash, `set -e`) run before the main process (`ExecStartPre=`), from `/usr/lib/sonix/scripts/<name>-pre-start`.";
      };
      postStart = mkOption {
        type = types.lines;
        default = "";
        description = "Shell commands (bash, `set -e`) run after the main process started (`ExecStartPost=`), from `/usr/lib/sonix/scripts/<name>-post-start`.";
      };
    };
  };

  socketOptions = {
    options = {
      listenStreams = mkOption {
        type = unitList;
        default = [ ];
        example = [ "0.0.0.0:993" "/run/my.sock" ];
        description = "`ListenStream=` addresses (TCP ports, addresses, socket paths).";
      };
      listenDatagrams = mkOption {
        type = unitList;
        default = [ ];
        example = [ "0.0.0.0:514" ];
        description = "`ListenDatagram=` addresses (UDP ports, addresses, socket paths).";
      };
      socketConfig = sd.sectionOption { section = "Socket"; what = "the socket"; example = { Accept = true; }; };
    };
  };

  timerOptions = {
    options.timerConfig = sd.sectionOption {
      section = "Timer";
      what = "the timer";
      example = { OnCalendar = "daily"; Persistent = true; Unit = "backup.service"; };
    };
  };
  pathOptions = {
    options.pathConfig = sd.sectionOption {
      section = "Path";
      what = "the path unit";
      example = { PathChanged = "/var/spool/jobs"; Unit = "jobs.service"; };
    };
  };
  sliceOptions = {
    options.sliceConfig = sd.sectionOption { section = "Slice"; what = "the slice"; example = { MemoryMax = "2G"; }; };
  };

  mountOptions = {
    options = {
      what = mkOption {
        type = types.str;
        example = "/dev/disk/by-label/data";
        description = "`What=`: the device, file or remote to mount.";
      };
      where = mkOption {
        type = types.str;
        example = "/var/lib/data";
        description = "`Where=`: the mount point; it also gives the unit its name (`var-lib-data.mount`).";
      };
      type = mkOption {
        type = types.str;
        default = "";
        example = "ext4";
        description = "`Type=`: the file system type (empty: detected).";
      };
      options = mkOption {
        type = types.commas;
        default = "";
        example = "noatime,nodev";
        description = "`Options=`: mount options, comma-separated.";
      };
      mountConfig = sd.sectionOption { section = "Mount"; what = "the mount unit"; example = { TimeoutSec = 30; }; };
    };
  };

  extraOptions = {
    services = [ serviceOptions ];
    sockets = [ socketOptions ];
    timers = [ timerOptions ];
    targets = [ ];
    paths = [ pathOptions ];
    slices = [ sliceOptions ];
  };

  kindDescriptions = {
    services = "Service units (`<name>.service`).";
    sockets = "Socket units (`<name>.socket`); a socket that should start at boot goes into `sockets.target`'s `wants`.";
    timers = "Timer units (`<name>.timer`); a timer that should run goes into `timers.target`'s `wants`.";
    targets = "Target units (`<name>.target`). Packaged targets (multi-user, sockets, timers, ...) take `wants` and `requires` here without being rewritten.";
    paths = "Path units (`<name>.path`).";
    slices = "Slice units (`<name>.slice`).";
  };

  # The unit options of one tree (the system's or the initrd's), under `prefix`.
  unitTreeOptions = prefix:
    lib.genAttrs (attrNames kinds) (kind: mkOption {
      type = types.attrsOf (types.submodule ([ (commonOptions { inherit prefix kind; }) ] ++ extraOptions.${kind}));
      default = { };
      example = lib.optionalAttrs (kind == "services") (lib.literalExpression ''
        {
          hello = {
            description = "Say hello";
            after = [ "network-online.target" ];
            serviceConfig.Type = "oneshot";
            script = "echo hello from $(hostname)";
          };
        }
      '');
      description = "${kindDescriptions.${kind}} Enable one with `${prefix}.targets.<target>.wants`.";
    }) // {
      mounts = mkOption {
        type = types.listOf (types.submodule [ (commonOptions { inherit prefix; kind = "mounts"; }) mountOptions ]);
        default = [ ];
        example = lib.literalExpression ''
          [ { what = "/dev/disk/by-label/data"; where = "/var/lib/data"; type = "ext4"; } ]
        '';
        description = ''
          Mount units, named after their mount point (`where = "/var/lib/data"` is
          `var-lib-data.mount`). Enable one with `${prefix}.targets.local-fs.requires`.
        '';
      };
    };

  # ---- rendering ---------------------------------------------------------------------------
  # Everything a tree's units produce: files (relative to the tree's /usr), assertions, and
  # whether scripts need bash.
  renderTree = prefix: cfg:
    let
      named = concatMap (kind:
        lib.mapAttrsToList (name: u: {
          inherit kind name u;
          unit = "${name}.${kinds.${kind}.suffix}";
          loc = "${prefix}.${kind}.${lib.escapeNixIdentifier name}";
        }) cfg.${kind}) (attrNames kinds)
        ++ lib.imap1 (i: u: {
          kind = "mounts";
          name = sd.escapeSystemdPath u.where;
          inherit u;
          unit = "${sd.escapeSystemdPath u.where}.mount";
          loc = "${prefix}.mounts.[${toString i}] (where = \"${u.where}\")";
        }) cfg.mounts;
      enabled = filter (x: x.u.enable) named;
      disabledUnits = map (x: x.unit) (filter (x: !x.u.enable) named);

      scriptFile = name: what: "lib/sonix/scripts/${name}-${what}";
      scripts = x: filter (s: s.text != "") (optionals (x.kind == "services") [
        { what = "start"; key = "ExecStart"; text = x.u.script; }
        { what = "pre-start"; key = "ExecStartPre"; text = x.u.preStart; }
        { what = "post-start"; key = "ExecStartPost"; text = x.u.postStart; }
      ]);

      unitSection = x:
        let u = x.u; in
        lib.foldr (dep: acc: sd.prependList dep.key dep.values acc) u.unitConfig [
          { key = "Description"; values = optional (u.description != "") u.description; }
          { key = "Documentation"; values = optional (u.documentation != [ ]) (concatStringsSep " " u.documentation); }
          { key = "Requisite"; values = u.requisite; }
          { key = "BindsTo"; values = u.bindsTo; }
          { key = "PartOf"; values = u.partOf; }
          { key = "Conflicts"; values = u.conflicts; }
          { key = "OnFailure"; values = u.onFailure; }
          { key = "After"; values = u.after; }
          { key = "Before"; values = u.before; }
        ];

      kindSection = x:
        let u = x.u; in
        if x.kind == "services" then
          lib.foldr (s: acc: sd.prependList s.key [ "/usr/${scriptFile x.name s.what}" ] acc)
            (sd.prependList "Environment"
              (lib.mapAttrsToList sd.quoteEnvironment (lib.filterAttrs (_: v: v != null) u.environment))
              u.serviceConfig)
            (scripts x)
        else if x.kind == "sockets" then
          sd.prependList "ListenStream" u.listenStreams (sd.prependList "ListenDatagram" u.listenDatagrams u.socketConfig)
        else if x.kind == "timers" then u.timerConfig
        else if x.kind == "paths" then u.pathConfig
        else if x.kind == "slices" then u.sliceConfig
        else if x.kind == "mounts" then
          { What = u.what; Where = u.where; }
          // optionalAttrs (u.type != "") { Type = u.type; }
          // optionalAttrs (u.options != "") { Options = u.options; }
          // u.mountConfig
        else { };

      sectionName = x: if x.kind == "mounts" then "Mount" else kinds.${x.kind}.section;

      textOf = x: sd.renderIni ([ { name = "Unit"; attrs = unitSection x; } ]
        ++ optional (sectionName x != null) { name = sectionName x; attrs = kindSection x; });

      unitFiles = x:
        let text = textOf x; in
        optionalAttrs (text != "") (
          if x.u.overrideStrategy == "asDropin"
          then { "lib/systemd/system/${x.unit}.d/overrides.conf".text = text; }
          else { "lib/systemd/system/${x.unit}".text = text; });

      linkFiles = x: listToAttrs (concatMap (dir:
        map (dep: nameValuePair "lib/systemd/system/${x.unit}.${dir}/${dep}" { symlink = "../${sd.linkTarget dep}"; })
          (filter (dep: !(lib.elem dep disabledUnits)) x.u.${dir})) [ "wants" "requires" ]);

      scriptFiles = x: listToAttrs (map (s: nameValuePair (scriptFile x.name s.what) {
        text = "#!/usr/bin/bash\nset -e\n${s.text}";
        mode = "0755";
      }) (scripts x));

      # A new unit (asUnit with content) needs what makes it start; without it, the unit was
      # probably meant to change a packaged one.
      startKeys = {
        services = [ "ExecStart" "ExecStop" "SuccessAction" ];
        sockets = [ "ListenStream" "ListenDatagram" "ListenSequentialPacket" "ListenFIFO" "ListenSpecial" "ListenNetlink" "ListenMessageQueue" "ListenUSBFunction" ];
        timers = [ "OnActiveSec" "OnBootSec" "OnStartupSec" "OnUnitActiveSec" "OnUnitInactiveSec" "OnCalendar" "OnClockChange" "OnTimezoneChange" ];
        paths = [ "PathExists" "PathExistsGlob" "PathChanged" "PathModified" "DirectoryNotEmpty" ];
      };
      incomplete = x:
        let section = kindSection x; in
        startKeys ? ${x.kind} && x.u.overrideStrategy == "asUnit" && textOf x != ""
        && !(any (k: (section.${k} or null) != null && section.${k} != [ ]) startKeys.${x.kind});

      wantsLine = x: dir: deps:
        let
          perDep = map (dep:
            let opt = optionOfUnit prefix dep; in
            if opt != null then "  ${opt}.${dir} = [ \"${x.unit}\" ];"
            else "  (add \"${x.unit}\" to the `${dir}` of the unit that needs it: ${dep})") deps;
        in
        concatStringsSep "\n" perDep;

      installAssertions = x: concatMap (pair:
        optional (x.u.${pair.from} != [ ]) {
          assertion = false;
          message = ''
            `${x.loc}.${pair.from}' is not supported: sonix enables units only from the depending side (no [Install], no ${pair.from}). Write instead:
            ${wantsLine x pair.to x.u.${pair.from}}'';
        }) [ { from = "wantedBy"; to = "wants"; } { from = "requiredBy"; to = "requires"; } ];

      otherAssertions = x:
        optional (x.kind != "mounts" && lib.hasSuffix ".${kinds.${x.kind}.suffix}" x.name) {
          assertion = false;
          message = "`${x.loc}': unit names are given without their suffix; write `${prefix}.${x.kind}.${lib.escapeNixIdentifier (lib.removeSuffix ".${kinds.${x.kind}.suffix}" x.name)}'.";
        }
        ++ optional (x.kind == "services" && x.u.script != "" && (x.u.serviceConfig.ExecStart or null) != null) {
          assertion = false;
          message = "`${x.loc}' sets both `script' and `serviceConfig.ExecStart'; keep one.";
        }
        ++ optional (incomplete x) {
          assertion = false;
          message = "`${x.loc}' writes a new unit file ${x.unit} that sets none of ${concatStringsSep "=, " startKeys.${x.kind}}=. To change the packaged ${x.unit} instead, set `${x.loc}.overrideStrategy = \"asDropin\";'.";
        };
    in
    {
      files = lib.foldl' (acc: x: acc // unitFiles x // linkFiles x // scriptFiles x) { } enabled;
      assertions = concatMap (x: installAssertions x ++ otherAssertions x) named;
      usesScripts = any (x: scripts x != [ ]) enabled;
    };

  system = renderTree "systemd" config.systemd;
  generatorMasks = listToAttrs (map (g: nameValuePair "lib/systemd/system-generators/${g}" {
    symlink = "/dev/null";
  }) config.systemd.disabledGenerators);
  unitMasks = units: listToAttrs (map (u: nameValuePair "lib/systemd/system/${u}" {
    symlink = "/dev/null";
  }) units);
  unitName = types.strMatching "[A-Za-z0-9_.@:-]+[.][a-z]+";
  maskedUnitsOption = { where, default, defaultText }: mkOption {
    type = types.listOf unitName;
    inherit default;
    example = [ ];
    description = ''
      Units that the ${where} masks (a symbolic link
      to /dev/null in /usr/lib/systemd/system): nothing can start them, and a `Wants=` on them
      is dropped. ${defaultText}
    '';
  };
  initrd = renderTree "boot.initrd.systemd" config.boot.initrd.systemd;
in
{
  imports = [ ./watchdog.nix ];

  options.systemd = unitTreeOptions "systemd" // {
    defaultUnit = lib.mkOption {
      type = lib.types.str;
      default = "multi-user.target";
      example = "rescue.target";
      description = ''
        The unit the system boots into (`default.target`). systemd's own default is
        `graphical.target`; a server has no graphical session.
      '';
    };
    disabledGenerators = mkOption {
      type = types.listOf (types.strMatching "[A-Za-z0-9_.@-]+");
      default = [
        "systemd-hibernate-resume-generator" "systemd-integritysetup-generator"
        "systemd-rc-local-generator" "systemd-run-generator" "systemd-ssh-generator"
        "systemd-system-update-generator" "systemd-sysv-generator"
      ] ++ lib.optional (!config.boot.secureBoot.tpm) "systemd-tpm2-generator";
      defaultText = lib.literalExpression ''[ "systemd-hibernate-resume-generator" ... "systemd-sysv-generator" ] ++ lib.optional (!config.boot.secureBoot.tpm) "systemd-tpm2-generator"'';
      example = [ ];
      description = ''
        systemd generators (programs in /usr/lib/systemd/system-generators) that the image masks
        (a symbolic link to /dev/null). PID 1 runs every generator at each boot and daemon-reload;
        under emulation each costs about a second of boot. The default masks those a sonix server
        does not use: resume from hibernation, dm-integrity tables, /etc/rc.local, `systemd.run=`,
        sshd on AF_VSOCK (the openssh module runs sshd), offline system updates (sonix updates
        itself from its channel), SysV init scripts and the TPM2 target (unless
        {option}`boot.secureBoot.tpm`). The masks go into the
        initrd too (its systemd runs generators as well). `[ ]` runs them all.
      '';
    };
    maskedUnits = maskedUnitsOption {
      where = "image";
      default = [ "modprobe@drm.service" ]
        ++ lib.optionals (config.boot.secureBoot.tpm && !config.boot.secureBoot.measurePcr15)
          pcr15Units;
      defaultText = ''
        The default masks `modprobe@drm.service`: systemd-logind wants the DRM core loaded
        before it looks for seats with graphics; a server has none, and a GPU's own driver
        still brings the DRM core when udev loads it. With {option}`boot.secureBoot.tpm` it
        also masks what measures into PCR 15, unless {option}`boot.secureBoot.measurePcr15`:
        `systemd-pcrmachine.service`, `systemd-pcrfs-root.service` and `systemd-pcrfs@.service`.
        `[ ]` masks none.
      '';
    };
  };
  options.boot.initrd.systemd = unitTreeOptions "boot.initrd.systemd" // {
    maskedUnits = maskedUnitsOption {
      where = "initrd";
      default = [ "modprobe@loop.service" ]
        ++ lib.optional (!config.boot.secureBoot.tpm) "systemd-pcrphase-initrd.service";
      defaultText = ''
        The default masks `modprobe@loop.service`: systemd-repart wants loop devices for
        image files, and in the initrd it only ever works on the boot disk. Without
        `boot.secureBoot.tpm` it masks `systemd-pcrphase-initrd.service` too: the initrd then
        has no `systemd-pcrextend`, and on a machine with a TPM the unit would fail (systemd-stub
        measured the UKI, so its condition holds). `[ ]` masks none.
      '';
    };
  };

  config = {
    system.usrFiles = system.files // {
      "lib/systemd/system/default.target".symlink = config.systemd.defaultUnit;
      # PID 1 runs preset-all on first boot: nothing is enabled behind the configuration's back.
      # (Preset files are read in name order and the first match wins; Debian's is 90-systemd.)
      "lib/systemd/system-preset/00-sonix.preset".text = ''
        # sonix: units are enabled by the .wants/.requires links of /usr/lib/systemd/system only.
        disable *
      '';
      # What `systemctl enable dbus-broker` would link ([Install] Alias=dbus.service): the system
      # bus is socket-activated (sockets.target.wants/dbus.socket is static) as dbus.service.
      "lib/systemd/system/dbus.service".symlink = "dbus-broker.service";
    } // generatorMasks // unitMasks config.systemd.maskedUnits;
    # A login prompt on the first virtual console (upstream's preset enables getty@.service);
    # serial consoles get theirs from systemd-getty-generator (console= on the command line).
    systemd.targets.getty.wants = [ "getty@tty1.service" ];
    boot.initrd.usrFiles = initrd.files // generatorMasks // unitMasks config.boot.initrd.systemd.maskedUnits;
    boot.initrd.binaries = optional initrd.usesScripts "/usr/bin/bash";
    assertions = system.assertions ++ initrd.assertions;
  };
}
