//! The clients against the real server: the Rust crate (`eye-client`), the browser
//! snippet (`/sdk/eye.js`, in headless Chromium) and the Python package (its pytest
//! suite, run from here so that `cargo test --workspace` runs all three).

mod browser_sdk;
#[allow(dead_code)]
#[path = "../ui/chrome.rs"]
mod chrome;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod pages;
mod python;
mod rust_client;
mod segment_sdks;
