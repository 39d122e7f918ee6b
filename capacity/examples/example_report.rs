//! Writes the example report of the README (`docs/capacity-example.{html,md,json}`) from the
//! synthetic history of seed 1: `cargo run -p plumb-capacity --example example_report -- DIR`.

use plumb_capacity::render::{Format, render};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "docs".to_owned());
    let (input, _) = plumb_capacity::synthetic::input(1, 0.8, 60);
    let report = plumb_capacity::build(&input)?;
    for (format, name) in [
        (Format::Html, "capacity-example.html"),
        (Format::Markdown, "capacity-example.md"),
        (Format::Json, "capacity-example.json"),
    ] {
        std::fs::write(
            std::path::Path::new(&dir).join(name),
            render(&report, format),
        )?;
    }
    Ok(())
}
