//! The container image and the compose files, for real: the image is built from the
//! checkout, `compose.yaml` and `deploy/compose.fleet.yaml` run, and the tests speak
//! HTTP to the published ports as a user would. Without a Docker engine (or
//! docker-compose, hadolint, kubernetes-validate) a test says so and passes, except
//! with `CI=true`, where a missing tool is a failure.
//! `EYE_TEST_KEEP_CONTAINERS=1` keeps the compose projects for a look afterwards.

mod docker;
mod fleet;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod lint;
mod single_node;
