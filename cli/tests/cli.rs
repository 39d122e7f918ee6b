//! The `plumb` binary on its own: what a user gets when the collector is not there or the
//! arguments are wrong (the collector's integration tests drive it against a real collector).

use std::process::Command;

fn plumb(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_plumb"))
        .args(args)
        .env_remove("PLUMB_QUERY_URL")
        .output()
        .expect("plumb runs")
}

#[test]
fn an_unreachable_collector_is_named_with_what_to_do() {
    // Port 1 on loopback: nothing listens there.
    let out = plumb(&["--endpoint", "http://127.0.0.1:1", "top"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the Plumb query API at http://127.0.0.1:1"),
        "{stderr}"
    );
    assert!(stderr.contains("is plumb-collector running?"), "{stderr}");
}

#[test]
fn a_bad_argument_names_the_choices() {
    let out = plumb(&["top", "--by", "p42"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("p42") && stderr.contains("p99"), "{stderr}");
}

#[test]
fn check_config_passes_a_good_file_and_names_the_line_of_a_bad_one() {
    let dir = std::env::temp_dir().join(format!("plumb-cli-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[[probe]]\nname = \"shop\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/health\"\n[route]\nreceiver = \"oncall\"\n[[receiver]]\nname = \"oncall\"\nwebhook = [{ url = \"http://127.0.0.1:2/hook\" }]\n",
    )
    .expect("write");
    let out = plumb(&["check-config", good.to_str().expect("utf8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ok: 1 probes, 0 rules, 1 receivers"),
        "{stdout}"
    );
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[route]\nreceiver = \"oncall\"\ngroup_wait = \"soon\"\n",
    )
    .expect("write");
    let out = plumb(&["check-config", bad.to_str().expect("utf8")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:2: receiver: no receiver is named \"oncall\""),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
