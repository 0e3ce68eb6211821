//! The analyst's API: filters and their combinations, ordering, pagination while events
//! arrive, sessions, stats against counts computed here, export formats, and the
//! OpenAPI document.

use std::collections::{BTreeMap, HashSet};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, WAIT, cli, spawn_app, typed_event, wait_until};

const PAGE: &str = "page interaction";

/// Posts `events` with `token` and checks every one was accepted.
async fn post_as(app: &TestApp, token: &str, events: &[Value]) {
    let response = app
        .post_raw(
            Value::Array(events.to_vec()).to_string().into_bytes(),
            "application/json",
            Some(token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["rejected"], 0, "{body}");
}

async fn wait_for_total(app: &TestApp, total: i64) {
    wait_until(WAIT, &format!("{total} events stored"), || async {
        let stats = app.get_json("/stats").await;
        (stats["total"] == total).then_some(())
    })
    .await;
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

fn at(minute: u32, second: u32) -> String {
    format!(
        "2024-03-01T{:02}:{:02}:{second:02}.250000Z",
        minute / 60,
        minute % 60
    )
}

#[tokio::test]
async fn filters_combine_and_order_holds() {
    let app = spawn_app().await;
    let mobile = cli(&app.data_dir, &["app", "create", "mobile"])
        .trim()
        .to_owned();
    let mut web_events = Vec::new();
    for i in 0..20u32 {
        let mut e = typed_event(
            &format!("fs{}", i % 4),
            PAGE,
            if i % 2 == 0 { "pageview" } else { "cta click" },
            json!({"host": "h", "path": format!("/{}", i % 3), "element": "button",
                   "n": i, "flag": i % 5 == 0, "form": {"first_name": if i % 4 == 0 { "John" } else { "Jane" }}}),
        );
        e["timestamp"] = json!(at(i, 0));
        web_events.push(e);
    }
    post_as(&app, &app.ingest_token, &web_events).await;
    let mut mobile_events = Vec::new();
    for i in 0..10u32 {
        let mut e = typed_event(
            "fm",
            "form interaction",
            "submit",
            json!({"host": "m", "path": "/", "form": {"first_name": "John"}}),
        );
        e["timestamp"] = json!(at(i, 30));
        mobile_events.push(e);
    }
    post_as(&app, &mobile, &mobile_events).await;
    wait_for_total(&app, 30).await;

    let count = |query: String| {
        let app = &app;
        async move { app.all_events(&query).await.len() }
    };
    assert_eq!(count("app=mobile".into()).await, 10);
    assert_eq!(count("app=web".into()).await, 20);
    let mobile_id = app.get_json("/events?app=mobile&limit=1").await["events"][0]["app"].clone();
    assert_eq!(mobile_id, "mobile");
    assert_eq!(
        count("category=page+interaction&name=pageview".into()).await,
        10
    );
    assert_eq!(count("data.path=/1".into()).await, 7);
    assert_eq!(count("data.n=7".into()).await, 1);
    assert_eq!(count("data.flag=true".into()).await, 4);
    assert_eq!(count("data.form.first_name=John".into()).await, 15);
    assert_eq!(count("data.form.first_name=John&app=web".into()).await, 5);
    assert_eq!(
        count("data.form.first_name=John&data.path=/0&name=pageview".into()).await,
        2
    );
    assert_eq!(count("data.missing=x".into()).await, 0);
    let window = format!("from={}&to={}", at(5, 0), at(10, 0));
    assert_eq!(count(window.clone()).await, 10);
    assert_eq!(count(format!("{window}&app=mobile")).await, 5);
    assert_eq!(
        count(format!("{window}&session_id=fs1&name=cta+click")).await,
        2
    );

    // Newest first by default, oldest first on request, and by session ascending.
    let desc = app.all_events("app=web").await;
    let asc = app.all_events("app=web&order=asc").await;
    let mut reversed = ids(&asc);
    reversed.reverse();
    assert_eq!(ids(&desc), reversed);
    let times: Vec<&str> = asc
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let session = app.get_json("/events?session_id=fs0").await;
    let session_times: Vec<&str> = session["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    assert!(session_times.windows(2).all(|w| w[0] <= w[1]));

    for (query, parameter) in [
        ("data..x=1", "data..x"),
        ("data.a%22b=1", "data.a\"b"),
        ("colour=red", "colour"),
        ("from=2024-02-01T00:00:00Z&to=2024-01-01T00:00:00Z", "from"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=zz", "cursor"),
        ("to=tomorrow", "to"),
    ] {
        let response = app.get(&format!("/events?{query}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["details"]["parameter"], parameter, "{query}");
    }
}

#[tokio::test]
async fn pages_skip_and_repeat_nothing_while_events_arrive() {
    let app = spawn_app().await;
    let initial: Vec<Value> = (0..300u32)
        .map(|i| {
            let mut e = typed_event(
                &format!("p{}", i % 7),
                PAGE,
                "pageview",
                json!({"host": "h", "path": "/"}),
            );
            e["timestamp"] = json!(at(i % 120, i % 60));
            e
        })
        .collect();
    post_as(&app, &app.ingest_token, &initial).await;
    wait_for_total(&app, 300).await;
    let before: HashSet<String> = ids(&app.all_events("order=asc").await)
        .into_iter()
        .collect();

    // Keep inserting, at times before and after the pages being read, while paging.
    let writer = {
        let address = app.address.clone();
        let token = app.ingest_token.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for round in 0..20u32 {
                let batch: Vec<Value> = (0..20u32)
                    .map(|i| {
                        let mut e = typed_event(
                            "late",
                            PAGE,
                            "pageview",
                            json!({"host": "h", "path": "/"}),
                        );
                        e["timestamp"] = json!(at((round * 7 + i) % 120, 59));
                        e
                    })
                    .collect();
                let response = client
                    .post(format!("{address}/events"))
                    .bearer_auth(&token)
                    .json(&batch)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::ACCEPTED);
            }
        })
    };
    for order in ["asc", "desc"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/events?order={order}&limit=37");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = app.get_json(&path).await;
            seen.extend(ids(page["events"].as_array().unwrap()));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "an event was repeated ({order})");
        let missing = before.iter().filter(|id| !unique.contains(id)).count();
        assert_eq!(
            missing, 0,
            "events stored before paging began were skipped ({order})"
        );
    }
    writer.await.unwrap();
}

#[tokio::test]
async fn stats_match_counts_computed_here() {
    let app = spawn_app().await;
    let mobile = cli(&app.data_dir, &["app", "create", "mobile"])
        .trim()
        .to_owned();
    let types = [(PAGE, "pageview"), (PAGE, "cta click"), ("video", "play")];
    let mut expected_by_type: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut sent: Vec<(String, String, String, &str)> = Vec::new(); // (timestamp, category, name, app)
    let mut web = Vec::new();
    let mut mob = Vec::new();
    for i in 0..240u32 {
        let (category, name) = types[(i % 3) as usize];
        // Over three hours, at seconds that are not minute-aligned.
        let minute = (i * 13) % 180;
        let second = (i * 7) % 60;
        let timestamp = at(minute, second);
        let mut e = typed_event(
            "st",
            category,
            name,
            json!({"host": "h", "path": "/", "element": "e"}),
        );
        e["timestamp"] = json!(timestamp);
        let app_name = if i % 4 == 0 { "mobile" } else { "web" };
        if app_name == "mobile" {
            mob.push(e)
        } else {
            web.push(e)
        }
        sent.push((timestamp, category.into(), name.into(), app_name));
        *expected_by_type
            .entry((category.into(), name.into()))
            .or_default() += 1;
    }
    post_as(&app, &app.ingest_token, &web).await;
    post_as(&app, &mobile, &mob).await;
    wait_for_total(&app, 240).await;

    let by_type = app.get_json("/stats?group_by=category,name").await;
    let got: BTreeMap<(String, String), i64> = by_type["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                (
                    g["category"].as_str().unwrap().into(),
                    g["name"].as_str().unwrap().into(),
                ),
                g["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected_by_type);

    // An unaligned range, hourly, by application: the rollup's whole minutes plus the
    // events themselves at both edges.
    let (from, to) = ("2024-03-01T00:20:30Z", "2024-03-01T02:41:10.500000Z");
    let mut expected: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (timestamp, _, _, app_name) in &sent {
        if timestamp.as_str() >= from.replace('Z', ".000000Z").as_str() && timestamp.as_str() < to {
            let hour = format!("{}00:00.000000Z", &timestamp[..14]);
            *expected.entry((hour, app_name.to_string())).or_default() += 1;
        }
    }
    let hourly = app
        .get_json(&format!(
            "/stats?group_by=app&bucket=hour&from={from}&to={to}"
        ))
        .await;
    let got: BTreeMap<(String, String), i64> = hourly["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                (
                    g["bucket"].as_str().unwrap().into(),
                    g["app"].as_str().unwrap().into(),
                ),
                g["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(hourly["total"], expected.values().sum::<i64>());

    let minute = app
        .get_json("/stats?from=2024-03-01T00:13:00Z&to=2024-03-01T00:14:00Z&bucket=minute")
        .await;
    let in_minute = sent
        .iter()
        .filter(|s| s.0.starts_with("2024-03-01T00:13:"))
        .count();
    assert_eq!(minute["total"], in_minute as i64);

    for (query, parameter) in [
        ("group_by=colour", "group_by"),
        ("group_by=name,name", "group_by"),
        (
            "bucket=week&from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z",
            "bucket",
        ),
        ("bucket=hour", "from"),
        (
            "bucket=minute&from=2000-01-01T00:00:00Z&to=2024-01-01T00:00:00Z",
            "bucket",
        ),
        ("from=x", "from"),
    ] {
        let response = app.get(&format!("/stats?{query}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["details"]["parameter"], parameter, "{query}");
    }
}

/// Splits RFC 4180 text into rows of fields.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

#[tokio::test]
async fn exports_stream_every_event_as_ndjson_and_csv() {
    let app = spawn_app().await;
    let tricky = json!({"host": "h", "path": "/a,b", "note": "say \"hi\"\nand, bye"});
    let mut total = 0;
    for chunk in 0..3 {
        let batch: Vec<Value> = (0..1000u32)
            .map(|i| {
                let mut e = typed_event(&format!("x{}", i % 50), PAGE, "pageview", tricky.clone());
                e["timestamp"] = json!(at((chunk * 1000 + i) % 1440, i % 60));
                e
            })
            .collect();
        post_as(&app, &app.ingest_token, &batch).await;
        total += batch.len();
    }
    wait_for_total(&app, total as i64).await;

    let get = |accept: &'static str, query: &'static str| {
        let app = &app;
        async move {
            app.client
                .get(app.url(&format!("/events{query}")))
                .bearer_auth(&app.read_token)
                .header("Accept", accept)
                .send()
                .await
                .unwrap()
        }
    };
    let response = get("application/x-ndjson", "?order=asc").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), total, "no page limit on an export");
    assert_eq!(lines[0]["data"], tricky);
    let unique: HashSet<&str> = lines.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(unique.len(), total);
    let times: Vec<&str> = lines
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));

    let response = get("text/csv", "?session_id=x7").await;
    assert_eq!(response.status(), StatusCode::OK);
    let rows = parse_csv(&response.text().await.unwrap());
    assert_eq!(rows[0][0], "id");
    assert_eq!(rows[0].last().unwrap(), "data");
    assert_eq!(rows.len(), 1 + 60);
    for row in &rows[1..] {
        assert_eq!(row.len(), rows[0].len(), "{row:?}");
        assert_eq!(row[1], "x7");
        let data: Value = serde_json::from_str(row.last().unwrap()).unwrap();
        assert_eq!(data, tricky);
    }

    let capped = get("application/x-ndjson", "?limit=5")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(capped.lines().count(), 5);
    let refused = get("image/png", "").await;
    assert_eq!(refused.status(), StatusCode::NOT_ACCEPTABLE);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_acceptable");
}

#[tokio::test]
async fn sessions_are_listed_and_timelines_carry_the_gaps() {
    let app = spawn_app().await;
    let mobile = cli(&app.data_dir, &["app", "create", "mobile"])
        .trim()
        .to_owned();
    let mut web = Vec::new();
    for s in 0..5u32 {
        for i in 0..4u32 {
            let mut e = typed_event(
                &format!("ls{s}"),
                PAGE,
                "pageview",
                json!({"host": "h", "path": "/"}),
            );
            e["timestamp"] = json!(at(s * 10 + i * i, 0));
            web.push(e);
        }
    }
    post_as(&app, &app.ingest_token, &web).await;
    let mut e = typed_event("ls4", PAGE, "pageview", json!({"host": "h", "path": "/"}));
    e["timestamp"] = json!(at(59, 0));
    post_as(&app, &mobile, &[e]).await;
    wait_for_total(&app, 21).await;

    let all = app.get_json("/sessions").await;
    let listed: Vec<&str> = all["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        ["ls4", "ls3", "ls2", "ls1", "ls0"],
        "most recently active first"
    );
    assert_eq!(all["sessions"][0]["apps"], json!(["mobile", "web"]));
    let by_app = app.get_json("/sessions?app=mobile").await;
    assert_eq!(by_app["sessions"].as_array().unwrap().len(), 1);
    let window = app
        .get_json(&format!("/sessions?from={}&to={}", at(15, 0), at(25, 0)))
        .await;
    let in_window: Vec<&str> = window["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(in_window, ["ls2", "ls1"]);
    // Pagination with a session cursor.
    let first = app.get_json("/sessions?limit=2").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app
        .get_json(&format!("/sessions?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(second["sessions"][0]["session_id"], "ls2");
    let bad = app.get("/sessions?cursor=abc").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // Gaps: minutes 10, 11, 14, 19 → null, 60 s, 180 s, 300 s; also across pages.
    let timeline = app.get_json("/sessions/ls1").await;
    let gaps: Vec<Value> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["since_previous_ms"].clone())
        .collect();
    assert_eq!(
        gaps,
        [
            json!(null),
            json!(60000.0),
            json!(180000.0),
            json!(300000.0)
        ]
    );
    let page = app.get_json("/sessions/ls1?limit=2").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = app
        .get_json(&format!("/sessions/ls1?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(next["events"][0]["since_previous_ms"], 180000.0);
    let desc = app.get_json("/sessions/ls1?order=desc&limit=2").await;
    assert_eq!(desc["events"][0]["since_previous_ms"], 300000.0);
    assert_eq!(desc["events"][1]["since_previous_ms"], 180000.0);
}

/// Runs a Python tool from PyPI, or says why it cannot: skipped outside CI, a failure in CI.
fn python_tool(args: &[&str]) -> Option<std::process::Output> {
    match std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
    {
        Ok(output) => Some(output),
        Err(error) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{} is needed in CI (pip install openapi-spec-validator schemathesis): {error}",
                args[0]
            );
            crate::helpers::skipped(format_args!("{} is not installed ({error})", args[0]));
            None
        }
    }
}

#[tokio::test]
async fn the_openapi_document_is_valid_and_no_documented_endpoint_fails() {
    let app = spawn_app().await;
    let document = app.get_json("/api/schema").await;
    assert_eq!(document["openapi"], "3.1.0");
    for path in [
        "/events",
        "/sessions",
        "/sessions/{id}",
        "/stats",
        "/errors",
        "/errors/summary",
        "/errors/reprocess",
        "/event-types/{category}/{name}/schema",
        "/healthz",
    ] {
        assert!(
            document["paths"].get(path).is_some(),
            "{path} is documented"
        );
    }
    let ui = app.get("/api/schema/swagger-ui/").await;
    assert_eq!(ui.status(), StatusCode::OK);
    assert!(ui.text().await.unwrap().contains("swagger"));

    let file = app.data_dir.join("openapi.json");
    std::fs::write(&file, document.to_string()).unwrap();
    if let Some(output) = python_tool(&["openapi-spec-validator", file.to_str().unwrap()]) {
        assert!(
            output.status.success(),
            "openapi-spec-validator: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let admin = format!("Authorization: Bearer {}", app.admin_token);
    let url = app.url("/api/schema");
    // Every check, the stateful phase included: answers match their documented
    // schemas, status codes and headers; requests the document forbids are refused;
    // requests it allows are accepted, but for the rules that join parameters, which
    // OpenAPI cannot state (listed in schemathesis.toml beside this file).
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/schemathesis.toml");
    if let Some(output) = python_tool(&[
        "schemathesis",
        "--config-file",
        config,
        "run",
        &url,
        "-H",
        &admin,
        "--max-examples",
        "15",
        "--checks",
        "all",
        "--seed",
        "1",
    ]) {
        assert!(
            output.status.success(),
            "schemathesis found failures: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}
