//! The report's three forms: JSON (the schema `plumb.capacity.v1`), Markdown for tickets, and
//! one self-contained HTML file (inline SVG charts, inline style, no script, nothing fetched:
//! it opens from a mail attachment). Markdown and HTML are compile-time-checked askama
//! templates over one [`view`] of the report, so both say the same thing in the same words.

pub mod chart;
pub mod view;

use crate::report::Report;
use askama::Template;

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON, pretty-printed.
    Json,
    /// Markdown.
    Markdown,
    /// HTML.
    Html,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "json" => Ok(Self::Json),
            "md" | "markdown" => Ok(Self::Markdown),
            "html" => Ok(Self::Html),
            other => Err(format!("unknown format {other:?}: use html, md or json")),
        }
    }
}

/// The Markdown template's own filter.
mod filters {
    /// Text as a Markdown table cell holds it: `|` escaped, line breaks as spaces.
    #[askama::filter_fn]
    pub fn cell(text: impl ToString, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(text.to_string().replace('|', "\\|").replace('\n', " "))
    }
}

#[derive(Template)]
#[template(path = "capacity.md", escape = "none")]
struct MarkdownPage<'a> {
    v: &'a view::View,
}

#[derive(Template)]
#[template(path = "capacity.html")]
struct HtmlPage<'a> {
    v: &'a view::View,
}

/// `report` in `format`.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(report)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            text.push('\n');
            text
        }
        Format::Markdown => MarkdownPage {
            v: &view::View::of(report, view::Target::Markdown),
        }
        .render()
        .unwrap_or_else(|e| format!("the report could not be written: {e}\n")),
        Format::Html => HtmlPage {
            v: &view::View::of(report, view::Target::Html),
        }
        .render()
        .unwrap_or_else(|e| format!("the report could not be written: {e}\n")),
    }
}
