//! The Debian package, built, installed, checked and removed on this
//! machine (as root; CI runs as root).
//!
//! To keep CI short it packages the debug build `cargo test` has already
//! made (`crates/roundtable/packaging/deb --profile dev --no-build`:
//! cargo-deb takes the program from `target/debug/` and strips it) instead
//! of building a release a second time; the package's contents are the
//! same but for the program's speed. Then: `dpkg -i`, `roundtable
//! --version`, the manual page and the bash, zsh and fish completions where
//! Debian looks for them, `systemd-analyze verify` on the user and the
//! system unit, `desktop-file-validate` on the launcher, the steward's
//! system user, `lintian` with no error; `dpkg -r` takes the program and
//! leaves a person's home as it was. Everything installed is removed again.
//!
//! It needs cargo-deb, lintian, desktop-file-utils and systemd: `.ci/run`
//! installs them, and so does this test (as root) when one is missing.
//! Run as another user, outside CI, it says so and does nothing; it also
//! leaves alone a machine that has Roundtable's package installed already.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use roundtable_tests::{TestHome, roundtable_bin, run_bounded};

const STEWARD_USER: &str = "roundtable-steward";

/// The cargo-deb this test and `.ci/run` install (it warns that packaging
/// a dev build may be refused by a later version).
const CARGO_DEB: &str = "3.8.0";

fn root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
    })
}

fn has(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a command to its end (within `limit`), or fails the test with all
/// it printed.
fn run(cmd: &mut Command, limit: Duration) -> String {
    let what = format!("{cmd:?}");
    let mut c = Command::new(cmd.get_program());
    c.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        c.current_dir(dir);
    }
    let r = run_bounded(c, limit);
    assert_eq!(r.code, 0, "{what}\n{}\n{}", r.stdout, r.stderr);
    r.stdout + &r.stderr
}

/// Installs what the test needs and is missing.
fn prerequisites() {
    let mut missing = Vec::new();
    for (program, arg, package) in [
        ("lintian", "--version", "lintian"),
        ("desktop-file-validate", "--help", "desktop-file-utils"),
        ("systemd-analyze", "--version", "systemd"),
    ] {
        if !has(program, arg) {
            missing.push(package);
        }
    }
    if !missing.is_empty() {
        eprintln!("package test: installing {}", missing.join(" "));
        run(
            Command::new("apt-get").args(["update", "-qq"]),
            Duration::from_secs(300),
        );
        run(
            Command::new("apt-get")
                .args(["install", "-y", "-qq"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
            Duration::from_secs(900),
        );
    }
    if !Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("package test: installing cargo-deb");
        run(
            Command::new("cargo").args([
                "install",
                "cargo-deb",
                "--version",
                CARGO_DEB,
                "--locked",
                "--quiet",
            ]),
            Duration::from_secs(1200),
        );
    }
}

/// Purges the package (and the steward's user, when this test made it) on
/// the way out, whatever happened.
struct Installed {
    user_was_there: bool,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "roundtable"])
            .output();
        if !self.user_was_there {
            let _ = Command::new("userdel").arg(STEWARD_USER).output();
            let _ = Command::new("groupdel").arg(STEWARD_USER).output();
        }
    }
}

fn user_exists(name: &str) -> bool {
    Command::new("getent")
        .args(["passwd", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_debian_package_installs_checks_out_and_leaves_homes_alone() {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    if !root() {
        assert!(!ci, "the package test needs root in CI");
        eprintln!("package test skipped: it installs a package, which needs root");
        return;
    }
    if Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "roundtable"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("installed"))
    {
        assert!(!ci, "a roundtable package is installed on the CI machine");
        eprintln!("package test skipped: Roundtable's package is installed here already");
        return;
    }
    prerequisites();

    // The debug build of this test run, packaged.
    let bin = roundtable_bin();
    let target = bin
        .parent()
        .and_then(Path::parent)
        .expect("target/debug/roundtable")
        .to_path_buf();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf();
    let out = tempfile::tempdir().expect("a directory");
    let mut deb = Command::new(workspace.join("crates/roundtable/packaging/deb"));
    deb.args(["--profile", "dev", "--no-build", "--fast", "--output"])
        .arg(out.path())
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&workspace);
    // What `cargo test` tells this test about its own package is not for
    // the cargo that packages another.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || matches!(
                &*key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            deb.env_remove(&*key);
        }
    }
    run(&mut deb, Duration::from_secs(900));
    let deb: PathBuf = std::fs::read_dir(out.path())
        .expect("the output")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("a .deb was made");

    let guard = Installed {
        user_was_there: user_exists(STEWARD_USER),
    };
    run(
        Command::new("dpkg")
            .arg("-i")
            .arg(&deb)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        Duration::from_secs(300),
    );

    // The program, its manual page and completions, where Debian keeps them.
    let version = run(
        Command::new("/usr/bin/roundtable").arg("--version"),
        Duration::from_secs(30),
    );
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let man = run(
        Command::new("gzip").args(["-dc", "/usr/share/man/man1/roundtable.1.gz"]),
        Duration::from_secs(30),
    );
    assert!(man.contains(".TH roundtable"), "{man}");
    for (path, mark) in [
        (
            "/usr/share/bash-completion/completions/roundtable",
            "_roundtable",
        ),
        (
            "/usr/share/zsh/vendor-completions/_roundtable",
            "#compdef roundtable",
        ),
        (
            "/usr/share/fish/vendor_completions.d/roundtable.fish",
            "complete -c roundtable",
        ),
    ] {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            text.contains(mark),
            "{path} is not roundtable's completions"
        );
    }
    for size in ["16x16", "48x48", "256x256"] {
        let png = format!("/usr/share/icons/hicolor/{size}/apps/roundtable.png");
        assert!(Path::new(&png).exists(), "{png}");
    }
    assert!(Path::new("/usr/share/icons/hicolor/scalable/apps/roundtable.svg").exists());

    // The units verify (their Documentation= too, where `man` is here to
    // read it); neither is enabled nor started by the install. A user
    // manager is made up for the user unit when no session has one.
    let man = if has("man", "--version") {
        "--man=yes"
    } else {
        "--man=no"
    };
    let runtime = tempfile::tempdir().expect("a runtime directory");
    let mut user = Command::new("systemd-analyze");
    user.args([
        "--user",
        "verify",
        man,
        "/usr/lib/systemd/user/roundtable.service",
    ]);
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        user.env("XDG_RUNTIME_DIR", runtime.path());
    }
    run(&mut user, Duration::from_secs(60));
    run(
        Command::new("systemd-analyze").args([
            "verify",
            man,
            "/usr/lib/systemd/system/roundtable-steward.service",
        ]),
        Duration::from_secs(60),
    );
    assert!(
        !Path::new("/etc/systemd/system/multi-user.target.wants/roundtable-steward.service")
            .exists()
    );
    assert!(!Path::new("/etc/systemd/user/default.target.wants/roundtable.service").exists());
    let unit = std::fs::read_to_string("/usr/lib/systemd/system/roundtable-steward.service")
        .expect("the steward's unit");
    for hardening in [
        "User=roundtable-steward",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ProtectHome=yes",
        "PrivateTmp=yes",
    ] {
        assert!(unit.contains(hardening), "{hardening} is missing");
    }
    let passwd = run(
        Command::new("getent").args(["passwd", STEWARD_USER]),
        Duration::from_secs(30),
    );
    assert!(passwd.contains(":/var/lib/roundtable-steward:"), "{passwd}");

    run(
        Command::new("desktop-file-validate").arg("/usr/share/applications/roundtable.desktop"),
        Duration::from_secs(30),
    );

    // Lintian reports no error (warnings are for people to weigh).
    let lintian = run_bounded(
        {
            let mut c = Command::new("lintian");
            c.args(["--tag-display-limit", "0", "--allow-root"])
                .arg(&deb);
            c
        },
        Duration::from_secs(600),
    );
    let errors: Vec<&str> = lintian
        .stdout
        .lines()
        .filter(|l| l.starts_with("E:"))
        .collect();
    assert!(
        errors.is_empty(),
        "lintian reports errors:\n{}\n{}",
        lintian.stdout,
        lintian.stderr
    );

    // A person's home, written by the installed program, outlives the
    // package.
    let home = TestHome::new();
    run(
        Command::new("/usr/bin/roundtable")
            .arg("--home")
            .arg(home.path())
            .env("ROUNDTABLE_CONFIG", home.config_path())
            .args(["circle", "create", "Tuesday Supper", "--as", "Maya"]),
        Duration::from_secs(60),
    );
    let before = home.snapshot_files();
    assert!(!before.is_empty());
    run(
        Command::new("dpkg").args(["-r", "roundtable"]),
        Duration::from_secs(300),
    );
    assert!(!Path::new("/usr/bin/roundtable").exists());
    assert!(!Path::new("/usr/share/man/man1/roundtable.1.gz").exists());
    assert_eq!(
        home.snapshot_files(),
        before,
        "removing the package touched a home"
    );
    drop(guard);
    assert!(!Path::new("/usr/lib/systemd/system/roundtable-steward.service").exists());
}
