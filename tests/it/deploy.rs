//! The deployment files (Dockerfile, docker-compose.yml, deploy/sigcast.service) name real
//! commands and settings, keep their hardening, and the image's way of running works: a
//! read-only configuration directory, writes only in the data directory, and the
//! HEALTHCHECK command answering. (No Docker engine runs here; this checks what can be.)

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sigcast::config::KEYS;

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `SIGCAST_*` name in `text`.
fn env_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("SIGCAST_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        names.insert(name);
        rest = &rest[at + 8..];
    }
    names
}

/// Each name is a setting's environment variable (or SIGCAST_CONFIG, the file itself).
fn assert_known(file: &str, names: &BTreeSet<String>) {
    let known: BTreeSet<String> = KEYS.iter().map(|k| k.env_name()).collect();
    for name in names {
        assert!(
            name == "SIGCAST_CONFIG" || known.contains(name),
            "{file} sets {name}, which is no sigcast setting"
        );
    }
}

/// `sigcast ARGS --help` parses: the command line names a real subcommand and flags.
fn assert_command_parses(file: &str, args: &[&str]) {
    let out = Command::new(common::sigcast_bin())
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{file}: `sigcast {}` is not a sigcast command line: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The JSON-array argv of a Dockerfile instruction (`CMD ["/usr/local/bin/sigcast", ...]`).
fn exec_form(dockerfile: &str, instruction: &str) -> Vec<String> {
    let joined = dockerfile.replace("\\\n", " ");
    let line = joined
        .lines()
        .find(|l| l.trim_start().starts_with(instruction))
        .unwrap_or_else(|| panic!("no {instruction} in the Dockerfile"));
    let array = &line[line.find('[').unwrap()..=line.rfind(']').unwrap()];
    serde_json::from_str(array).unwrap()
}

#[test]
fn dockerfile_runs_as_non_root_with_a_volume_and_a_real_healthcheck() {
    let dockerfile = repo_file("Dockerfile");
    assert_known("Dockerfile", &env_names(&dockerfile));
    assert!(
        dockerfile.contains("\nUSER 10001:10001\n"),
        "runs as non-root"
    );
    assert!(dockerfile.contains("VOLUME [\"/var/lib/sigcast\"]"));
    assert!(dockerfile.contains("SIGCAST_DATA_DIR=/var/lib/sigcast"));
    assert!(dockerfile.contains("EXPOSE 8443 9090"));
    let entrypoint = exec_form(&dockerfile, "ENTRYPOINT");
    assert_eq!(entrypoint, ["/usr/local/bin/sigcast"]);
    let cmd = exec_form(&dockerfile, "CMD [");
    assert_eq!(cmd, ["serve"]);
    let health = exec_form(&dockerfile, "HEALTHCHECK");
    assert_eq!(health[0], "/usr/local/bin/sigcast");
    let args: Vec<&str> = health[1..].iter().map(String::as_str).collect();
    assert_command_parses("Dockerfile HEALTHCHECK", &args);
}

#[test]
fn compose_keeps_the_admin_port_private_and_the_root_read_only() {
    let compose = repo_file("docker-compose.yml");
    assert_known("docker-compose.yml", &env_names(&compose));
    for line in [
        "read_only: true",
        "cap_drop: [ALL]",
        "no-new-privileges:true",
        "\"127.0.0.1:9090:9090\"",
        "sigcast-data:/var/lib/sigcast",
        "./site:/etc/sigcast:ro",
    ] {
        assert!(compose.contains(line), "docker-compose.yml lacks {line}");
    }
}

#[test]
fn systemd_unit_is_hardened_reloads_on_sighup_and_verifies() {
    let unit = repo_file("deploy/sigcast.service");
    assert_known("deploy/sigcast.service", &env_names(&unit));
    for setting in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "MemoryDenyWriteExecute=yes",
        "StateDirectory=sigcast",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(setting), "the unit lacks {setting}");
    }
    for key in ["ExecStartPre=", "ExecStart="] {
        let line = unit
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key}"));
        let argv: Vec<&str> = line[key.len()..].split_whitespace().collect();
        assert_eq!(argv[0], "/usr/local/bin/sigcast");
        assert_command_parses(&format!("the unit's {key}"), &argv[1..]);
    }
    // systemd's own check, where systemd is installed: every directive known and valid.
    let Ok(status) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipping systemd-analyze verify: not installed");
        return;
    };
    assert!(status.status.success());
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("sigcast.service");
    let bin = common::sigcast_bin();
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/sigcast", bin.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && complaints.trim().is_empty(),
        "{complaints}"
    );
}

/// Every file under `dir`, with its size.
fn listing(dir: &Path) -> BTreeSet<(PathBuf, u64)> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                out.insert((entry.path(), meta.len()));
            }
        }
    }
    out
}

/// Runs `sigcast serve` as the image does (its environment, the configuration directory
/// read-only): it starts, writes only in the data directory, and `sigcast healthcheck`
/// reports it healthy and then ready.
#[test]
fn the_image_way_of_running_writes_only_the_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    let data = tmp.path().join("data");
    let init = Command::new(common::sigcast_bin())
        .args(["init"])
        .arg(&site)
        .output()
        .unwrap();
    assert!(init.status.success());
    std::fs::create_dir(&data).unwrap();
    let before = listing(&site);
    // Read-only, as the image mounts it (root ignores modes, so compare listings too).
    for (path, _) in &before {
        let mut perms = std::fs::metadata(path).unwrap().permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(path, perms).unwrap();
    }
    let log = tmp.path().join("stderr.log");
    let mut server = Command::new(common::sigcast_bin())
        .arg("serve")
        .current_dir(&site)
        .env("SIGCAST_CONFIG", site.join("sigcast.toml"))
        .env("SIGCAST_SERVER_LISTEN", "127.0.0.1:0")
        .env("SIGCAST_ADMIN_ENABLED", "true")
        .env("SIGCAST_ADMIN_LISTEN", "127.0.0.1:0")
        .env("SIGCAST_DATA_DIR", &data)
        .env("SIGCAST_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let admin = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let found = text.lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["fields"]["admin"].as_str().map(String::from)
        });
        if let Some(admin) = found {
            break admin;
        }
        assert!(
            Instant::now() < deadline,
            "no admin listener logged:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let check = |ready: bool| {
        let mut c = Command::new(common::sigcast_bin());
        c.args(["healthcheck", "--admin", &admin]);
        if ready {
            c.arg("--ready");
        }
        c.output().unwrap()
    };
    assert!(check(false).status.success());
    while !check(true).status.success() {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert!(server.wait().unwrap().success());

    assert_eq!(
        listing(&site),
        before,
        "nothing written in the configuration directory"
    );
    let written: Vec<PathBuf> = listing(&data).into_iter().map(|(p, _)| p).collect();
    assert!(
        written.iter().any(|p| p.ends_with("sigcast.db")),
        "the journal is in the data directory: {written:?}"
    );
}
