//! The real `ssfd` binary, as a new user runs it: `serve` with no configuration, then the
//! other subcommands against the same data directory.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn ssfd(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ssfd"));
    command
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("SSFD_CONFIG");
    // Configuration variables of the developer's shell must not leak into these runs.
    for (name, _) in std::env::vars() {
        if name.starts_with("SSFD_") && name.contains("__") {
            command.env_remove(name);
        }
    }
    command
}

fn run(dir: &Path, args: &[&str]) -> Output {
    ssfd(dir).args(args).output().expect("ssfd runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "ssfd failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// A running `ssfd serve`, killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `ssfd serve` in `dir` on a free port and waits for its "listening" log line.
fn start(dir: &Path) -> Server {
    let mut child = ssfd(dir)
        .arg("serve")
        .env("SSFD_SERVER__BIND", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("ssfd serve starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("address=").nth(1) {
                let address = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx.send(address);
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("ssfd logs the address it listens on");
    Server {
        child,
        base: format!("http://{address}"),
    }
}

#[tokio::test]
async fn serve_with_no_configuration_uses_sqlite_under_data_and_publishes_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    assert!(
        dir.path().join("data/ssfd.db").exists(),
        "SQLite file under ./data"
    );

    let http = reqwest::Client::new();
    let health = http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = http
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // The first start generated one RS256 signing key (IOP-SIG-01) and serves its public half.
    let jwks: serde_json::Value = http
        .get(format!("{}/jwks.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().expect("a JWK Set");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["alg"], "RS256");
    assert_eq!(keys[0]["kty"], "RSA");
    assert!(keys[0].get("d").is_none(), "no private member is published");

    // The health check subcommand agrees.
    let check = run(dir.path(), &["healthcheck", "--url", &server.base]);
    assert!(check.status.success());
    drop(server);
    let check = run(dir.path(), &["healthcheck", "--url", "http://127.0.0.1:9"]);
    assert!(!check.status.success(), "a dead server is unhealthy");
}

#[test]
fn keys_rotate_keeps_the_old_key_published_during_the_overlap() {
    let dir = tempfile::tempdir().unwrap();
    stdout(&run(dir.path(), &["migrate"]));
    stdout(&run(dir.path(), &["keys", "generate", "--alg", "ES256"]));
    let first: serde_json::Value =
        serde_json::from_str(&stdout(&run(dir.path(), &["keys", "jwks"]))).unwrap();
    assert_eq!(first["keys"].as_array().unwrap().len(), 1);
    assert_eq!(first["keys"][0]["alg"], "ES256");

    stdout(&run(dir.path(), &["keys", "rotate"]));
    let after: serde_json::Value =
        serde_json::from_str(&stdout(&run(dir.path(), &["keys", "jwks"]))).unwrap();
    let algs: Vec<_> = after["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(algs.len(), 2, "old and new key during the overlap: {after}");
    assert!(algs.contains(&"ES256".to_owned()) && algs.contains(&"RS256".to_owned()));

    let list = stdout(&run(dir.path(), &["keys", "list"]));
    assert_eq!(list.matches("signing").count(), 1, "{list}");
    assert_eq!(list.matches("published").count(), 1, "{list}");

    // A rotation with no overlap retires the previous keys at once.
    let output = ssfd(dir.path())
        .args(["keys", "rotate"])
        .env("SSFD_SIGNING__ROTATION_OVERLAP_SECS", "0")
        .output()
        .unwrap();
    stdout(&output);
    let last: serde_json::Value =
        serde_json::from_str(&stdout(&run(dir.path(), &["keys", "jwks"]))).unwrap();
    assert_eq!(last["keys"].as_array().unwrap().len(), 1, "{last}");
}

#[test]
fn config_print_default_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let printed = stdout(&run(dir.path(), &["config", "print-default"]));
    let path = dir.path().join("ssfd.toml");
    std::fs::write(&path, &printed).unwrap();
    let checked = stdout(&run(
        dir.path(),
        &["config", "check", path.to_str().unwrap()],
    ));
    assert!(checked.contains("valid"), "{checked}");

    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:1\"\n").unwrap();
    let output = run(dir.path(), &["config", "check", path.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("listen"),
        "the unknown key is named: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_add_registers_a_transmitter_and_lists_it() {
    let transmitter = crate::common::TestServer::start().await;
    let (client_id, secret) = transmitter.client(&["ssf.manage"]).await;
    let dir = tempfile::tempdir().unwrap();
    let base = transmitter.base.clone();
    let dir_path = dir.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        ssfd(&dir_path)
            .args([
                "upstream",
                "add",
                "--issuer",
                &base,
                "--delivery",
                "poll",
                "--client-id",
                &client_id,
            ])
            .env("SSFD_UPSTREAM_CLIENT_SECRET", &secret)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let added = stdout(&output);
    assert!(added.contains("registered"), "{added}");
    // The stream exists at the transmitter, owned by that client.
    assert_eq!(
        transmitter.store().list_streams(None).await.unwrap().len(),
        1
    );
    let list = stdout(&run(dir.path(), &["upstream", "list"]));
    assert!(
        list.contains(&transmitter.base) && list.contains("poll"),
        "{list}"
    );

    // A wrong secret fails with the step named, and registers nothing.
    let base = transmitter.base.clone();
    let dir_path = dir.path().to_owned();
    let refused = tokio::task::spawn_blocking(move || {
        ssfd(&dir_path)
            .args([
                "upstream",
                "add",
                "--issuer",
                &base,
                "--client-id",
                "nobody",
                "--client-secret",
                "wrong",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("access token"));
}
