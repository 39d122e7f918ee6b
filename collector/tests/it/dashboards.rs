//! Every query of every Grafana dashboard in `dashboards/grafana/` runs: over data from a real
//! workload (the demo backend with the agent embedded, its traffic, host and process metrics,
//! and probes: one healthy, one of a TLS certificate that fails its condition), each panel's
//! SQL and each
//! variable's query is expanded the way the ClickHouse data source plugin expands it (template
//! variables, `$__conditionalAll`, `$__timeFilter`, `$__fromTime`/`$__toTime`,
//! `$__interval_s`), refused if a `$` is left, and run on ClickHouse 18.16 and on current
//! ClickHouse (chDB, over the same rows): it succeeds, returns rows, and a time series query's
//! first column is a DateTime. Multi-value variables are run both as "All" and as one value.

use crate::alerting::{Hooks, route_to, start_with_alerting};
use plumb_test_support::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The panel interval the queries are expanded with (Grafana's `$__interval_s`).
const INTERVAL_S: u64 = 30;

/// A demo backend process, stopped when dropped.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn demo(args: &[&str]) -> Demo {
    Demo(
        Command::new(binary("plumb-demo"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("plumb-demo starts"),
    )
}

/// A Grafana variable's value: one value, or "All" (`$__all`).
#[derive(Clone, Debug)]
enum Value {
    One(String),
    All,
}

/// The arguments of the macro call whose `(` is at `open`, split at top-level commas, and the
/// index just past its closing `)`.
fn macro_args(sql: &str, open: usize) -> Result<(Vec<String>, usize), String> {
    let (mut depth, mut quoted, mut start) = (0usize, false, open + 1);
    let mut args = Vec::new();
    for (i, c) in sql[open..].char_indices() {
        let at = open + i;
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth -= 1;
                if depth == 0 {
                    args.push(sql[start..at].trim().to_owned());
                    return Ok((args, at + 1));
                }
            }
            ',' if !quoted && depth == 1 => {
                args.push(sql[start..at].trim().to_owned());
                start = at + 1;
            }
            _ => {}
        }
    }
    Err(format!("unclosed macro call in {sql}"))
}

/// Replaces every `name(args)` call in `sql` by what `with` makes of its arguments.
fn replace_calls(
    sql: &str,
    name: &str,
    with: impl Fn(&[String]) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = sql.to_owned();
    while let Some(at) = out.find(&format!("{name}(")) {
        let (args, end) = macro_args(&out, at + name.len())?;
        let replacement = with(&args)?;
        out.replace_range(at..end, &replacement);
    }
    Ok(out)
}

/// The variable a `$name` or `${name}` argument names.
fn variable_name(arg: &str) -> &str {
    arg.trim_start_matches('$')
        .trim_start_matches('{')
        .trim_end_matches('}')
}

/// `sql` as the plugin sends it for the time range `[from, to]` (Unix seconds) and `values`:
/// `$__conditionalAll` first (the condition, or `1=1` for "All"), then template variables
/// (`${v:singlequote}` quotes), then the backend macros. Any `$` left is an error.
fn expand(
    sql: &str,
    values: &BTreeMap<String, Value>,
    from: u64,
    to: u64,
) -> Result<String, String> {
    let mut out = replace_calls(sql, "$__conditionalAll", |args| {
        let [condition, variable] = args else {
            return Err(format!("$__conditionalAll takes 2 arguments: {args:?}"));
        };
        match values.get(variable_name(variable)) {
            Some(Value::All) => Ok("1=1".into()),
            Some(Value::One(_)) => Ok(condition.clone()),
            None => Err(format!("unknown variable {variable}")),
        }
    })?;
    // Longest names first, so `$service` never eats the start of `$service_x`.
    let mut names: Vec<&String> = values.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        let Value::One(value) = &values[name] else {
            continue;
        };
        out = out
            .replace(&format!("${{{name}:singlequote}}"), &format!("'{value}'"))
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out = replace_calls(&out, "$__timeFilter", |args| {
        let [column] = args else {
            return Err(format!("$__timeFilter takes 1 argument: {args:?}"));
        };
        Ok(format!(
            "{column} >= toDateTime({from}) AND {column} <= toDateTime({to})"
        ))
    })?;
    out = out
        .replace("$__fromTime", &format!("toDateTime({from})"))
        .replace("$__toTime", &format!("toDateTime({to})"))
        .replace("$__interval_s", &INTERVAL_S.to_string());
    match out.find('$') {
        Some(at) => Err(format!("left unexpanded at {at}: {out}")),
        None => Ok(out),
    }
}

/// One statement to run, and what it must give.
#[derive(Debug)]
struct Check {
    name: String,
    sql: String,
    time_series: bool,
}

/// What ClickHouse answered: the first column's type and the rows.
#[derive(Debug)]
struct Answer {
    first_type: String,
    rows: Vec<serde_json::Value>,
}

async fn run_on_server(http: &reqwest::Client, sql: &str) -> Result<Answer, String> {
    let response = http
        .post(clickhouse_url().await)
        .body(format!("{sql}\nFORMAT JSONCompact"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(text);
    }
    answer(&serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?)
}

fn answer(result: &serde_json::Value) -> Result<Answer, String> {
    Ok(Answer {
        first_type: result["meta"][0]["type"]
            .as_str()
            .ok_or_else(|| format!("no columns: {result}"))?
            .to_owned(),
        rows: result["data"].as_array().cloned().unwrap_or_default(),
    })
}

/// The dashboards, by file name.
fn dashboards() -> Vec<(String, serde_json::Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards/grafana");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dashboards/grafana")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("dashboard file");
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, json)
        })
        .collect()
}

/// The values a dashboard is checked with: its variables' own queries run in order, each taking
/// `prefer` if offered, else the first value; multi-value variables are "All" when `all`.
async fn values_for(
    http: &reqwest::Client,
    dashboard: &serde_json::Value,
    database: &str,
    (from, to): (u64, u64),
    all: bool,
) -> Result<BTreeMap<String, Value>, String> {
    // The probe that fails and has a certificate, so every uptime panel has rows for it.
    let prefer = ["shop", "GET /orders/{id}", "api-cert"];
    let mut values = BTreeMap::new();
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = var["name"].as_str().unwrap_or_default().to_owned();
        let value = match var["type"].as_str() {
            Some("datasource") => continue,
            Some("constant") if name == "database" => database.to_owned(),
            Some("constant" | "textbox" | "custom") => var["current"]["value"]
                .as_str()
                .or_else(|| var["query"].as_str())
                .unwrap_or_default()
                .split(',')
                .next()
                .unwrap_or_default()
                .to_owned(),
            Some("query") => {
                let sql = var["query"]["rawSql"].as_str().unwrap_or_default();
                let sql = expand(sql, &values, from, to)?;
                let offered: Vec<String> = run_on_server(http, &sql)
                    .await
                    .map_err(|e| format!("variable {name}: {e}"))?
                    .rows
                    .iter()
                    .filter_map(|r| r[0].as_str().map(str::to_owned))
                    .collect();
                let chosen = prefer
                    .iter()
                    .find(|p| offered.iter().any(|o| o == *p))
                    .map(|p| (*p).to_owned())
                    .or_else(|| offered.first().cloned())
                    .ok_or_else(|| format!("variable {name} offers nothing: {sql}"))?;
                if all && var["includeAll"].as_bool() == Some(true) {
                    values.insert(name, Value::All);
                    continue;
                }
                chosen
            }
            other => return Err(format!("variable {name}: unexpected type {other:?}")),
        };
        values.insert(name, Value::One(value));
    }
    Ok(values)
}

/// Every statement of `dashboard` (its variables' queries and each panel's targets) expanded
/// with `values`.
fn statements(
    file: &str,
    dashboard: &serde_json::Value,
    values: &BTreeMap<String, Value>,
    (from, to): (u64, u64),
    pass: &str,
) -> Result<Vec<Check>, String> {
    let mut checks = Vec::new();
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(sql) = var["query"]["rawSql"].as_str() {
            checks.push(Check {
                name: format!("{file} ({pass}) variable {}", var["name"]),
                sql: expand(sql, values, from, to)?,
                time_series: false,
            });
        }
    }
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let sql = target["rawSql"].as_str().unwrap_or_default();
            checks.push(Check {
                name: format!("{file} ({pass}) panel {}", panel["title"]),
                sql: expand(sql, values, from, to)
                    .map_err(|e| format!("{file} panel {}: {e}", panel["title"]))?,
                time_series: target["format"].as_u64() == Some(0),
            });
        }
    }
    Ok(checks)
}

/// Copies every table of `database` (as 18.16 describes it, with its rows in RowBinary) into
/// chDB and runs `checks` there; the answers by check name.
async fn run_on_chdb(
    http: &reqwest::Client,
    database: &str,
    checks: &[Check],
) -> BTreeMap<String, Result<Answer, String>> {
    let dir = tempfile::tempdir().expect("dir");
    let tables = run_on_server(
        http,
        &format!(
            "SELECT name FROM system.tables WHERE database = '{database}' \
             AND engine NOT LIKE '%View%' ORDER BY name"
        ),
    )
    .await
    .expect("tables");
    let mut fixture_tables = Vec::new();
    for row in &tables.rows {
        let table = row[0].as_str().expect("name");
        let ask = |sql: String| async move {
            let response = http
                .post(clickhouse_url().await)
                .body(sql)
                .send()
                .await
                .expect("ask");
            assert!(response.status().is_success(), "{table}");
            response.bytes().await.expect("body")
        };
        let create = ask(format!(
            "SHOW CREATE TABLE {database}.{table} FORMAT TabSeparatedRaw"
        ))
        .await;
        let rows = ask(format!("SELECT * FROM {database}.{table} FORMAT RowBinary")).await;
        let file = dir.path().join(format!("{table}.rowbinary"));
        std::fs::write(&file, &rows).expect("write rows");
        fixture_tables.push(serde_json::json!({
            "create": String::from_utf8_lossy(&create).trim(),
            "name": format!("{database}.{table}"),
            "file": file.display().to_string(),
        }));
    }
    let fixture = serde_json::json!({
        "database": database,
        "tables": fixture_tables,
        "queries": checks.iter().map(|c| (c.name.clone(), c.sql.clone())).collect::<BTreeMap<_, _>>(),
    });
    let fixture_file = dir.path().join("fixture.json");
    std::fs::write(&fixture_file, fixture.to_string()).expect("write fixture");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/dashboards_on_chdb.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(&fixture_file)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "chDB: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("chDB answers");
    results
        .into_iter()
        .map(|(name, r)| {
            let answer = match r["error"].as_str() {
                Some(e) => Err(e.to_owned()),
                None => answer(&r["result"]),
            };
            (name, answer)
        })
        .collect()
}

fn judge(check: &Check, answer: &Result<Answer, String>, on: &str) -> Option<String> {
    match answer {
        Err(e) => Some(format!("{} failed on {on}: {e}\n{}", check.name, check.sql)),
        Ok(a) if a.rows.is_empty() => Some(format!(
            "{} returned no rows on {on}\n{}",
            check.name, check.sql
        )),
        Ok(a) if check.time_series && !a.first_type.starts_with("DateTime") => Some(format!(
            "{}: the first column is {} on {on}, not a DateTime",
            check.name, a.first_type
        )),
        Ok(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_runs_on_old_and_current_clickhouse() {
    let pki = TestPki::with_server_expiring(Some(30));
    let tls_target = Collector::start_tls(&unique_database("dash_tls"), &pki, false).await;
    let (shop_port, recs_port) = (free_port(), free_port());
    let hooks = Hooks::start().await;
    let database = unique_database("dashboards");
    let (collector, _dir) = start_with_alerting(
        &database,
        &format!(
            r#"evaluation_interval = "1s"

[defaults.probe]
interval = "1s"
timeout = "1s"

[[probe]]
name = "shop-health"
kind = "http"
url = "http://127.0.0.1:{shop_port}/health"

[[probe]]
name = "api-cert"
kind = "tls"
address = "{tls}"
ca_file = "{ca}"
conditions = ["[CERTIFICATE_EXPIRATION] > 60d"]

{route}"#,
            tls = tls_target.query,
            ca = pki.arg("ca.pem"),
            route = route_to(&hooks.url),
        ),
    )
    .await;
    let otlp = collector.grpc_url();
    let (shop, recs) = (
        format!("127.0.0.1:{shop_port}"),
        format!("127.0.0.1:{recs_port}"),
    );
    let _recs = demo(&[
        "serve",
        "--service",
        "recs",
        "--addr",
        &recs,
        "--otlp-endpoint",
        &otlp,
    ]);
    let _shop = demo(&[
        "serve",
        "--service",
        "shop",
        "--addr",
        &shop,
        "--recs-url",
        &format!("http://{recs}"),
        "--otlp-endpoint",
        &otlp,
    ]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let traffic = Command::new(binary("plumb-demo"))
        .args([
            "traffic",
            "--target",
            &format!("http://{shop}"),
            "--rate",
            "40",
        ])
        .args(["--duration", "8s"])
        .output()
        .expect("traffic runs");
    assert!(traffic.status.success(), "{traffic:?}");

    // Wait for every kind of row the dashboards read.
    let deadline = Instant::now() + Duration::from_secs(90);
    for table in [
        "latency_minute",
        "latency_hour",
        "breakdown_minute",
        "spans",
        "metric_hour",
        "probe_minute",
        "probe_day",
    ] {
        while query_number(&database, &format!("SELECT count() FROM {table}")).await == 0 {
            assert!(Instant::now() < deadline, "no rows in {table}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    while query_number(
        &database,
        "SELECT count() FROM probe_results WHERE leaf_days_left >= 0",
    )
    .await
        == 0
        || query_number(
            &database,
            "SELECT uniqExact(name) FROM metric_hour WHERE name LIKE 'system.%'",
        )
        .await
            < 3
    {
        assert!(Instant::now() < deadline, "no certificate or host metrics");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let range = (now - 3600, now + 60);
    let http = reqwest::Client::new();
    let mut checks = Vec::new();
    for (file, dashboard) in dashboards() {
        for (pass, all) in [("All", true), ("one value", false)] {
            let values = values_for(&http, &dashboard, &database, range, all)
                .await
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            checks.extend(
                statements(&file, &dashboard, &values, range, pass)
                    .unwrap_or_else(|e| panic!("{e}")),
            );
        }
    }
    assert!(checks.len() > 40, "{} statements", checks.len());
    let mut problems = Vec::new();
    for check in &checks {
        problems.extend(judge(
            check,
            &run_on_server(&http, &check.sql).await,
            "18.16",
        ));
    }
    let current = run_on_chdb(&http, &database, &checks).await;
    let missing = Err("not run".to_owned());
    for check in &checks {
        let answer = current.get(&check.name).unwrap_or(&missing);
        problems.extend(judge(check, answer, "current ClickHouse"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert!(collector.stop().await);
    drop(tls_target);
}

#[test]
fn macros_expand_as_the_plugin_expands_them() {
    let values: BTreeMap<String, Value> = [
        ("service".to_owned(), Value::One("shop".into())),
        ("probe".to_owned(), Value::All),
        ("database".to_owned(), Value::One("plumb".into())),
    ]
    .into();
    let sql = "SELECT 1 FROM ${database}.t WHERE $__timeFilter(minute) \
               AND $__conditionalAll(service IN (${service:singlequote}), $service) \
               AND $__conditionalAll(probe IN (${probe:singlequote}), $probe) \
               AND x < $__toTime AND y = $__interval_s";
    assert_eq!(
        expand(sql, &values, 100, 200).expect("expands"),
        "SELECT 1 FROM plumb.t WHERE minute >= toDateTime(100) AND minute <= toDateTime(200) \
         AND service IN ('shop') AND 1=1 AND x < toDateTime(200) AND y = 30"
    );
    let e = expand("SELECT $nope", &values, 0, 1).expect_err("left over");
    assert!(e.contains("left unexpanded"), "{e}");
}

#[test]
fn dashboards_have_stable_uids_a_data_source_variable_and_portable_macros() {
    let mut uids = Vec::new();
    for (file, dashboard) in dashboards() {
        let uid = dashboard["uid"].as_str().unwrap_or_default().to_owned();
        assert!(uid.starts_with("plumb-"), "{file}: uid {uid:?}");
        uids.push(uid);
        let vars = dashboard["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            vars.iter().any(|v| v["type"] == "datasource"
                && v["name"] == "datasource"
                && v["query"] == "grafana-clickhouse-datasource"),
            "{file}: no data source variable"
        );
        for panel in dashboard["panels"].as_array().into_iter().flatten() {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{file}");
            for target in panel["targets"].as_array().into_iter().flatten() {
                let sql = target["rawSql"].as_str().unwrap_or_default();
                for banned in ["$__timeInterval", "$__timeGroup", "_ms(", "$__fromTime_ms"] {
                    assert!(!sql.contains(banned), "{file} {}: {banned}", panel["title"]);
                }
            }
        }
    }
    let count = uids.len();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), count, "uids are unique");
    assert!(count >= 4, "{uids:?}");
}
