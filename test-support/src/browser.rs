//! Debian's Chromium, headless: pages are opened as a user's browser opens them, and what it
//! drew is kept as a screenshot or as the DOM after layout.

use std::path::Path;
use std::process::Command;

/// The Chromium binary (`scripts/install-deps.sh` installs it).
const CHROMIUM: &str = "chromium";

fn chromium(extra: &[&str], url: &str) -> std::process::Output {
    Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-extensions",
            "--no-first-run",
            "--window-size=1100,2400",
        ])
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium (scripts/install-deps.sh installs it)")
}

/// Opens `page` (a file) and saves a PNG screenshot at `png`; returns the PNG's size in bytes.
pub fn screenshot(page: &Path, png: &Path) -> u64 {
    screenshot_url(&format!("file://{}", page.display()), png)
}

/// Opens `url` and saves a PNG screenshot at `png`; returns the PNG's size in bytes.
pub fn screenshot_url(url: &str, png: &Path) -> u64 {
    let shot = format!("--screenshot={}", png.display());
    let out = chromium(&[&shot], url);
    assert!(
        png.is_file(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::metadata(png).map_or(0, |m| m.len())
}

/// Opens `page` (a file) and returns the DOM as Chromium laid it out.
pub fn dom(page: &Path) -> String {
    dom_url(&format!("file://{}", page.display()))
}

/// Opens `url` and returns the DOM as Chromium laid it out (after its scripts ran).
pub fn dom_url(url: &str) -> String {
    let out = chromium(&["--dump-dom"], url);
    String::from_utf8_lossy(&out.stdout).into_owned()
}
