//! The report against history with a known truth (see `plumb_capacity::synthetic`), over many
//! seeds: the tolerances a reader of the report can rely on.

use plumb_capacity::report::{ServiceReport, date};
use plumb_capacity::synthetic::{self, Truth};
use plumb_capacity::{Report, build};

/// Seeds per scenario.
const SEEDS: u64 = 10;
/// Days the forecasts look ahead.
const HORIZON_DAYS: u32 = 60;

fn report(seed: u64, load_share: f64) -> (Report, Truth) {
    let (input, truth) = synthetic::input(seed, load_share, HORIZON_DAYS);
    (build(&input).expect("report"), truth)
}

fn day_of(text: &str) -> i64 {
    let date: jiff::civil::Date = text.parse().expect("a date");
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .expect("zoned")
        .timestamp()
        .as_second()
}

fn within(value: f64, truth: f64, share: f64) -> bool {
    (value - truth).abs() <= share * truth.abs()
}

fn service(r: &Report) -> &ServiceReport {
    &r.services[0]
}

#[test]
fn load_cost_and_shifts_are_found_within_their_tolerances() {
    for seed in 1..=SEEDS {
        let (r, t) = report(seed, 0.85);
        let s = service(&r);
        let say = format!("seed {seed}: {t:?}\n{s:?}");
        assert!(
            s.periods_hours.contains(&24) && s.periods_hours.contains(&168),
            "periods: {say}"
        );
        let hour_off =
            (i32::from(s.busiest_hour_utc) - i32::from(t.busiest_hour_utc)).rem_euclid(24);
        assert!(hour_off <= 1 || hour_off >= 23, "busiest hour: {say}");
        assert_eq!(
            s.busiest_weekday,
            plumb_capacity::load::WEEKDAYS[t.busiest_weekday],
            "{say}"
        );
        let growth = s.growth_percent_per_week.expect("growth");
        assert!(
            within(growth, t.growth_percent_per_week, 0.10),
            "growth: {say}"
        );
        let cpu = s.cpu_seconds_per_request.expect("cpu");
        assert!(within(cpu, t.cpu_seconds_per_request, 0.05), "cpu: {say}");
        assert!(
            within(s.idle_cpu_cores.expect("idle"), t.idle_cores, 0.2),
            "idle: {say}"
        );
        assert_eq!(s.quality.cpu_counter_resets, 1, "{say}");
        assert_eq!(s.change_points.len(), 1, "one level shift: {say}");
        let shifted = synthetic::start() + t.shift_day * 86_400;
        assert!(
            (day_of(&s.change_points[0].date) - shifted).abs() <= 86_400,
            "shift dated {} for {}: {say}",
            s.change_points[0].date,
            date(shifted)
        );
    }
}

#[test]
fn disk_crossings_hold_the_truth_and_the_sawtooth_never_crosses() {
    let (mut inside, mut close) = (0, 0);
    for seed in 1..=SEEDS {
        let (r, t) = report(seed, 0.85);
        let host = &r.hosts[0];
        let find = |name: &str| {
            host.resources
                .iter()
                .find(|x| x.name == name)
                .unwrap_or_else(|| panic!("{name}"))
        };
        let data = find("filesystem /data");
        let truth = t.disk_crossing(0.9);
        let c = &data.crossing;
        let earliest = c.earliest.as_deref().map_or(i64::MIN, day_of);
        let latest = c.latest.as_deref().map_or(i64::MAX, day_of);
        if earliest <= truth && truth <= latest + 86_400 {
            inside += 1;
        }
        let lead = (truth - synthetic::UNTIL) as f64;
        if let Some(likely) = c.likely.as_deref().map(day_of)
            && ((likely - truth) as f64).abs() <= 7.0 * 86_400.0 + 0.1 * lead
        {
            close += 1;
        }
        let logs = find("filesystem /var/log");
        assert_eq!(logs.crossing.likely, None, "seed {seed}: {logs:?}");
        assert_eq!(
            logs.forecast.as_ref().map(|f| f.model),
            Some("envelope"),
            "seed {seed}"
        );
        let memory = find("memory");
        assert_eq!(memory.crossing.likely, None, "seed {seed}: {memory:?}");
        assert_ne!(memory.forecast.as_ref().map(|f| f.model), Some("envelope"));
    }
    assert!(
        inside * 10 >= SEEDS * 9,
        "truth inside the interval in {inside} of {SEEDS}"
    );
    assert!(
        close * 10 >= SEEDS * 8,
        "likely date close in {close} of {SEEDS}"
    );
}

#[test]
fn the_ceiling_is_found_under_heavy_load_and_flagged_under_light_load() {
    for seed in 1..=SEEDS {
        let (r, t) = report(seed, 0.8);
        let fit = service(&r).scalability.clone().expect("fit");
        let say = format!("seed {seed}: max {} {fit:?}", t.max_rps);
        assert!(fit.observed_max_rps >= 0.75 * t.max_rps, "{say}");
        assert!(within(fit.max_rps.expect("max"), t.max_rps, 0.2), "{say}");
        assert!(!fit.extrapolated, "{say}");

        let (r, t) = report(seed, 0.4);
        let fit = service(&r).scalability.clone().expect("fit");
        let say = format!("seed {seed}: max {} {fit:?}", t.max_rps);
        assert!(fit.observed_max_rps < 0.5 * t.max_rps, "{say}");
        match fit.max_rps_interval {
            Some((low, high)) => {
                assert!(fit.extrapolated, "{say}");
                assert!(
                    low <= t.max_rps && high.is_none_or(|h| t.max_rps <= h),
                    "{say}"
                );
            }
            None => assert!(fit.max_rps.is_none(), "no ceiling in sight: {say}"),
        }
    }
}

#[test]
fn the_same_input_gives_the_same_report() {
    let (a, _) = report(3, 0.85);
    let (b, _) = report(3, 0.85);
    assert_eq!(a, b);
}

#[test]
fn every_format_renders_and_the_same_input_gives_the_same_bytes() {
    use plumb_capacity::render::{Format, render};
    let (a, _) = report(5, 0.85);
    let (b, _) = report(5, 0.85);
    for format in [Format::Json, Format::Markdown, Format::Html] {
        assert_eq!(render(&a, format), render(&b, format), "{format:?}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&render(&a, Format::Json)).expect("valid JSON");
    assert_eq!(json["schema"], "plumb.capacity.v1");
    let html = render(&a, Format::Html);
    assert!(html.matches("<svg").count() >= 5, "charts in the page");
    assert!(!html.contains("<script"), "no script");
    let md = render(&a, Format::Markdown);
    assert!(
        md.contains("## Service shop") && md.contains("## Host box-1"),
        "{md}"
    );
}

#[test]
fn the_json_validates_against_its_schema() {
    use plumb_capacity::render::{Format, render};
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/capacity.v1.schema.json")).expect("schema");
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    for (seed, share) in [(1, 0.8), (2, 0.4)] {
        let (r, _) = report(seed, share);
        let json: serde_json::Value =
            serde_json::from_str(&render(&r, Format::Json)).expect("JSON");
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
    }
    // A report with too little history still validates (its nulls and refusals included).
    let (mut input, _) = synthetic::input(3, 0.8, 60);
    input.since = synthetic::UNTIL - 5 * 86_400;
    for s in &mut input.services {
        s.hours.retain(|h| h.hour >= synthetic::UNTIL - 5 * 86_400);
        s.cpu_seconds.clear();
        s.load_bins.truncate(2);
    }
    let short = build(&input).expect("report");
    assert!(!short.refused.is_empty());
    let json: serde_json::Value =
        serde_json::from_str(&render(&short, Format::Json)).expect("JSON");
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // And the schema does refuse what it does not describe.
    let mut wrong = json.clone();
    wrong["services"][0]["busiest_hour_utc"] = 24.into();
    assert!(!validator.is_valid(&wrong));
    wrong = json;
    wrong["hosts"][0]["resources"][0]["extra"] = true.into();
    assert!(!validator.is_valid(&wrong));
}

#[test]
fn the_committed_example_report_is_what_the_code_makes() {
    use plumb_capacity::render::{Format, render};
    let (input, _) = synthetic::input(1, 0.8, 60);
    let r = build(&input).expect("report");
    assert_eq!(
        render(&r, Format::Markdown),
        include_str!("../../docs/capacity-example.md"),
        "run `cargo run -p plumb-capacity --example example_report -- docs`"
    );
    assert_eq!(
        render(&r, Format::Json),
        include_str!("../../docs/capacity-example.json"),
        "run `cargo run -p plumb-capacity --example example_report -- docs`"
    );
}

#[test]
fn markdown_cells_hold_names_with_pipes() {
    use plumb_capacity::render::{Format, render};
    let (mut input, _) = synthetic::input(2, 0.8, 60);
    input.services[0].endpoints[0].operation = "GET /a|b".into();
    let md = render(&build(&input).expect("report"), Format::Markdown);
    assert!(md.contains("| GET /a\\|b |"), "{md}");
}
