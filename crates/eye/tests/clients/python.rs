//! The Python package's own suite (`clients/python/tests`, pytest), against this
//! build's binary, so that `cargo test --workspace` runs every client's tests.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_python_client_suite_passes_against_this_binary() {
    let package = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients/python");
    let has_pytest = Command::new("python3")
        .args(["-c", "import pytest, the_eye_client"])
        .current_dir(&package)
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_pytest {
        let message = "python3 with pytest and the package is needed: \
                       python3 -m pip install ./clients/python pytest";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        crate::helpers::skipped(format_args!("{message}"));
        return;
    }
    let output = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
        .current_dir(&package)
        .env("EYE_BINARY", env!("CARGO_BIN_EXE_eye"))
        .output()
        .expect("running pytest");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the Python suite failed:\n{report}"
    );
    eprintln!("{}", report.lines().last().unwrap_or_default());
}
