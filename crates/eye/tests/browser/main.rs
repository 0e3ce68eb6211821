//! End-to-end browser tests: the real `eye` binary on a random port, and a headless
//! Chromium driven over WebDriver (`fantoccini` and Debian's `chromedriver`) looking
//! at the pages it serves.
//!
//! Run with `cargo test -p eye --test browser`. Needs
//! `apt-get install -y chromium chromium-driver`; without it the tests print
//! `skipping: ...` and pass, except with `CI=true`, where they fail. Screenshots go to
//! `<target dir>/screenshots/`.

// Not every test uses every helper.
#[allow(dead_code)]
mod driver;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

use std::time::Duration;

use driver::browser;
use helpers::spawn_app;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn browser_renders_a_page_served_by_the_real_binary() {
    let Some(browser) = browser().await else {
        return;
    };
    let app = spawn_app().await;

    // A plain JSON answer, shown as text.
    browser
        .goto(&app.url("/healthz"))
        .await
        .expect("opening /healthz");
    browser
        .wait_for_text("body", r#""status":"ok""#, WAIT)
        .await;

    // Swagger UI: HTML, scripts and styles from the binary, then the OpenAPI document
    // fetched by those scripts and rendered.
    browser
        .goto(&app.url("/api/schema/swagger-ui/"))
        .await
        .expect("opening Swagger UI");
    browser
        .wait_for_text(".swagger-ui .info .title", "The Eye", WAIT)
        .await;
    browser
        .wait_for_text(".swagger-ui .opblock-summary-path", "/healthz", WAIT)
        .await;
    browser.screenshot("smoke").await;

    // Scripts in the page call the server: try `GET /healthz` from Swagger UI.
    let healthz = "#operations-operations-healthz";
    browser.click(&format!("{healthz} .opblock-summary")).await;
    browser.click(&format!("{healthz} .try-out__btn")).await;
    browser.click(&format!("{healthz} .execute")).await;
    browser
        .wait_for_text(
            &format!("{healthz} .live-responses-table"),
            r#""status": "ok""#,
            WAIT,
        )
        .await;

    browser.close().await;
}
