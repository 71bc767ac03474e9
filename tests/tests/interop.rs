//! Portcullis against real third-party software: the `oidc-provider` authorization server and the official MCP
//! TypeScript SDK client, driven by `tests/interop/run.mjs` (see there). Needs Node 20+ and npm; the driver runs
//! `npm ci` when `tests/interop/node_modules` is missing and builds the `axum_mcp` example and the gateway into
//! `target/interop` (a target directory of its own, so that it never waits on this `cargo test`'s lock).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The first run compiles the binaries into their own target directory; later runs take about two minutes.
const TIMEOUT: Duration = Duration::from_secs(30 * 60);
const KEPT_LINES: usize = 80;

#[test]
fn real_authorization_server_and_mcp_sdk_client() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("tests").join("interop").join("run.mjs");
    let mut child = Command::new(std::env::var_os("NODE").unwrap_or_else(|| "node".into()))
        .arg(&script)
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `node {}` (Node 20+ is needed): {e}",
                script.display()
            )
        });

    // Stream the driver's lines as they come (past libtest's capture), keeping the last ones for the message.
    let kept = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let kept = Arc::clone(&kept);
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
                let mut kept = kept.lock().expect("lines");
                kept.push(line);
                if kept.len() > KEPT_LINES {
                    kept.remove(0);
                }
            }
        })
    };

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the driver") {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            stop(&mut child);
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = reader.join();
    let tail = kept.lock().expect("lines").join("\n");
    match status {
        Some(status) if status.success() => {}
        Some(status) => panic!("the interop driver failed ({status}); its last lines:\n{tail}"),
        None => {
            panic!("the interop driver did not finish within {TIMEOUT:?}; its last lines:\n{tail}")
        }
    }
}

/// Asks the driver to stop (it then stops every process it started), and kills it if it does not.
fn stop(child: &mut Child) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
