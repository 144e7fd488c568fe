//! The no-Docker demo: `ids-demo` (mock cluster, producer and two processors in
//! one process) classifies synthetic traffic and shows verdicts well within
//! 60 s of its start.

use std::time::Duration;

#[test]
fn demo_shows_verdicts_within_60_seconds() -> anyhow::Result<()> {
    let model = ids_e2e::workspace_root().join("models/artifacts/nsl-kdd.json");
    if !model.is_file() {
        panic!("committed default model {} is missing", model.display());
    }
    let mut demo = ids_e2e::spawn(
        "ids-demo",
        &[
            "--duration",
            "60",
            "--limit",
            "2000",
            "--rate",
            "1000",
            "--sample-every",
            "1",
        ],
        &[],
    )?;
    let status = demo
        .wait_timeout(Duration::from_secs(120))
        .ok_or_else(|| anyhow::anyhow!("demo did not finish; log:\n{}", demo.log()))?;
    let log = demo.log();
    assert!(status.success(), "demo failed ({status}); log:\n{log}");
    assert!(
        log.contains("SYNTHETIC"),
        "synthetic traffic is labelled:\n{log}"
    );
    assert!(log.contains("all 2000 flows sent and classified"), "{log}");
    assert!(log.contains("sample alert:"), "{log}");
    let first = log
        .lines()
        .find_map(|l| l.split("first verdict after ").nth(1))
        .and_then(|s| s.trim_end_matches(" s").parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no first-verdict time in:\n{log}"))?;
    assert!(first < 60.0, "first verdict after {first} s");
    Ok(())
}
