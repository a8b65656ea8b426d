//! `hakken --config` on a file in another folder, run from a third: the paths the file
//! gives (venues, events, data dir) are relative to the file, not the working directory.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A configuration in a temporary folder naming its files relatively, like the shipped one.
fn config_elsewhere() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("layouts")).unwrap();
    std::fs::copy(repo().join("config/venues/hakken-stadium.toml"), dir.path().join("layouts/stadium.toml")).unwrap();
    std::fs::copy(repo().join("config/events/demo.toml"), dir.path().join("demo.toml")).unwrap();
    let file = "venues = [\"layouts/stadium.toml\"]\nevents = [\"demo.toml\"]\ndata_dir = \"store\"\n\
                listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n\
                [privacy]\nkeys = [\"demo:ZGVtby1rZXktcHVibGljLW5vdC1hLXNlY3JldC0wMDE=\"]\nactive_key = \"demo\"\n\
                [payments]\nprovider = \"test\"\n";
    std::fs::write(dir.path().join("hakken.toml"), file).unwrap();
    dir
}

fn hakken(config: &Path, cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hakken"));
    command.current_dir(cwd).arg("--config").arg(config).env("HAKKEN_LOG", "warn");
    // The caller's own overrides must not leak in.
    for variable in ["HAKKEN_DATA_DIR", "HAKKEN_VENUES", "HAKKEN_EVENTS"] {
        command.env_remove(variable);
    }
    command
}

#[test]
fn check_config_finds_the_files_beside_the_config_from_any_folder() {
    let dir = config_elsewhere();
    let elsewhere = tempfile::tempdir().unwrap();
    let output = hakken(&dir.path().join("hakken.toml"), elsewhere.path()).arg("check-config").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("event demo-2027") && stdout.ends_with("ok\n"), "{stdout}");
}

#[test]
fn serve_keeps_its_store_beside_the_config() {
    let dir = config_elsewhere();
    let elsewhere = tempfile::tempdir().unwrap();
    let mut child = hakken(&dir.path().join("hakken.toml"), elsewhere.path())
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = BufReader::new(stdout).lines().map_while(Result::ok).any(|line| line.starts_with("hakken ready"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "hakken serve became ready");
    assert!(dir.path().join("store").is_dir(), "the store is in the config's folder");
    assert!(std::fs::read_dir(elsewhere.path()).unwrap().next().is_none(), "nothing in the working directory");
}

/// The engine checks a time zone's shape only; the server looks it up before it listens,
/// and `check-config` does the same.
#[test]
fn an_unknown_time_zone_stops_the_server_before_it_listens() {
    let dir = config_elsewhere();
    let venue = dir.path().join("layouts/stadium.toml");
    let text = std::fs::read_to_string(&venue).unwrap();
    let text = text.replace("time_zone = \"Europe/Berlin\"", "time_zone = \"Europe/Atlantis\"");
    std::fs::write(&venue, text).unwrap();
    for command in ["check-config", "serve"] {
        let output = hakken(&dir.path().join("hakken.toml"), dir.path()).arg(command).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains("stadium.toml: [venue] time_zone")
                && stderr.contains("unknown time zone \"Europe/Atlantis\""),
            "{command}: {stderr}"
        );
        assert!(!String::from_utf8_lossy(&output.stdout).contains("hakken listening"), "{command} did not listen");
    }
}
