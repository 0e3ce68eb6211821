//! End-to-end tests of the admin UI in a real headless Chromium, driven through
//! WebDriver (Debian's `chromium` and `chromium-driver`). Without them the tests say
//! so and pass, except with `CI=true`, where a missing browser is a failure.

mod admin_ui;
mod chrome;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
