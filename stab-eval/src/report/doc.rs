//! The report as a document of blocks — what every report section builds and what both
//! renderers read: [`Doc::markdown`] for `stab report` and `report.md`, [`Doc::html`] for
//! the self-contained `report.html` (plots inlined where their block stands).
//!
//! Text inside a paragraph or list item may mark `**strong**` and `` `code` `` spans; that
//! is the only inline markup, and both renderers understand it.

use super::table::Table;

/// One block of a report.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A heading: level 2 for a section, 3 for a subsection.
    Heading { level: u8, text: String },
    /// A paragraph of prose.
    Paragraph(String),
    /// A bulleted list.
    List(Vec<String>),
    /// A table.
    Table(Table),
    /// A plot written beside the report (`file` in the plots directory), placed here.
    Plot { caption: String, file: String },
}

/// A report document: blocks in reading order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Doc {
    pub blocks: Vec<Block>,
}

impl Doc {
    pub fn new() -> Self {
        Self::default()
    }

    /// A section heading (level 2).
    pub fn heading(&mut self, text: impl Into<String>) -> &mut Self {
        self.blocks.push(Block::Heading {
            level: 2,
            text: text.into(),
        });
        self
    }

    /// A subsection heading (level 3).
    pub fn subheading(&mut self, text: impl Into<String>) -> &mut Self {
        self.blocks.push(Block::Heading {
            level: 3,
            text: text.into(),
        });
        self
    }

    pub fn paragraph(&mut self, text: impl Into<String>) -> &mut Self {
        self.blocks.push(Block::Paragraph(text.into()));
        self
    }

    pub fn list(&mut self, items: Vec<String>) -> &mut Self {
        self.blocks.push(Block::List(items));
        self
    }

    /// A table, without its columns that hold no value ([`Table::without_empty_columns`]).
    pub fn table(&mut self, table: Table) -> &mut Self {
        self.blocks
            .push(Block::Table(table.without_empty_columns()));
        self
    }

    pub fn plot(&mut self, caption: impl Into<String>, file: impl Into<String>) -> &mut Self {
        self.blocks.push(Block::Plot {
            caption: caption.into(),
            file: file.into(),
        });
        self
    }

    /// A section: its heading, an introductory paragraph and its table.
    pub fn section(&mut self, heading: &str, intro: &str, table: Table) -> &mut Self {
        self.heading(heading).paragraph(intro).table(table)
    }

    /// Append another document's blocks.
    pub fn append(&mut self, other: Doc) -> &mut Self {
        self.blocks.extend(other.blocks);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// GitHub-flavoured Markdown: each block followed by a blank line; a plot's image
    /// links to its bare file name ([`Doc::markdown_linking`] puts a folder before it).
    pub fn markdown(&self) -> String {
        self.markdown_linking("")
    }

    /// [`Doc::markdown`] with every image link prefixed by `plots` (e.g. `"plots/"`: the
    /// plots folder as seen from where the Markdown file will be).
    pub fn markdown_linking(&self, plots: &str) -> String {
        let mut out = String::new();
        for block in &self.blocks {
            match block {
                Block::Heading { level, text } => {
                    out.push_str(&"#".repeat(usize::from(*level)));
                    out.push(' ');
                    out.push_str(text);
                    out.push('\n');
                }
                Block::Paragraph(text) => {
                    out.push_str(text);
                    out.push('\n');
                }
                Block::List(items) => {
                    for item in items {
                        out.push_str("- ");
                        out.push_str(item);
                        out.push('\n');
                    }
                }
                Block::Table(table) => out.push_str(&table.markdown()),
                Block::Plot { caption, file } => {
                    out.push_str(&format!("![{caption}]({plots}{file})\n"));
                }
            }
            out.push('\n');
        }
        out
    }

    /// HTML body markup: a plot's block becomes a `<figure>` holding the SVG that `svg`
    /// returns for its file (a plot without one is left out, as the Markdown's image line
    /// would show nothing).
    pub fn html(&self, svg: &dyn Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for block in &self.blocks {
            match block {
                Block::Heading { level, text } => {
                    out.push_str(&format!("<h{level}>{}</h{level}>\n", esc(text)));
                }
                Block::Paragraph(text) => out.push_str(&format!("<p>{}</p>\n", inline(text))),
                Block::List(items) => {
                    out.push_str("<ul>\n");
                    for item in items {
                        out.push_str(&format!("<li>{}</li>\n", inline(item)));
                    }
                    out.push_str("</ul>\n");
                }
                Block::Table(table) => out.push_str(&table_html(table)),
                Block::Plot { caption, file } => {
                    if let Some(svg) = svg(file) {
                        out.push_str(&figure(&svg, &esc(caption)));
                    }
                }
            }
        }
        out
    }

    /// The files of the plots this document places.
    pub fn plot_files(&self) -> Vec<&str> {
        self.blocks
            .iter()
            .filter_map(|b| match b {
                Block::Plot { file, .. } => Some(file.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A figure holding an inline SVG and its (escaped) caption.
pub fn figure(svg: &str, caption: &str) -> String {
    let svg = svg.trim_start_matches(|c| c != '<');
    format!("<figure>\n{svg}\n<figcaption>{caption}</figcaption>\n</figure>\n")
}

/// The inline spans of a paragraph or list item (`**strong**`, `` `code` ``), escaped.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in esc(s).split("**").enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<strong>{part}</strong>"));
        } else {
            for (j, p) in part.split('`').enumerate() {
                if j % 2 == 1 {
                    out.push_str(&format!("<code>{p}</code>"));
                } else {
                    out.push_str(p);
                }
            }
        }
    }
    out
}

/// A table in a box that scrolls sideways when the table is wider than the page.
fn table_html(table: &Table) -> String {
    let mut out = String::from("<div class=\"wide\"><table>\n<thead><tr>");
    for h in &table.header {
        out.push_str(&format!("<th>{}</th>", esc(h)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for c in row {
            out.push_str(&format!("<td>{}</td>", esc(c)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table></div>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Doc {
        let mut doc = Doc::new();
        doc.heading("Title <x>")
            .paragraph("Some **text** & `more`.")
            .list(vec!["one".into(), "**two**".into()])
            .table(Table {
                header: vec!["a".into(), "b".into()],
                rows: vec![vec!["1".into(), "2±3".into()]],
            })
            .plot("a plot", "p.svg")
            .subheading("Sub");
        doc
    }

    #[test]
    fn markdown_puts_a_blank_line_after_every_block() {
        let md = sample().markdown();
        assert_eq!(
            md,
            "## Title <x>\n\nSome **text** & `more`.\n\n- one\n- **two**\n\n| a   | b   |\n|-----|-----|\n| 1   | 2±3 |\n\n![a plot](p.svg)\n\n### Sub\n\n"
        );
    }

    #[test]
    fn html_is_built_from_the_blocks_with_plots_inlined() {
        let html = sample().html(&|f| (f == "p.svg").then(|| "<svg>P</svg>".to_string()));
        assert!(html.contains("<h2>Title &lt;x&gt;</h2>"), "{html}");
        assert!(
            html.contains("<p>Some <strong>text</strong> &amp; <code>more</code>.</p>"),
            "{html}"
        );
        assert!(html.contains("<li><strong>two</strong></li>"), "{html}");
        assert!(html.contains("<th>a</th><th>b</th>"), "{html}");
        assert!(html.contains("<td>1</td><td>2±3</td>"), "{html}");
        assert!(
            html.contains("<svg>P</svg>\n<figcaption>a plot</figcaption>"),
            "{html}"
        );
        assert!(html.contains("<h3>Sub</h3>"), "{html}");
        assert!(!html.contains("---") && !html.contains("!["), "{html}");
    }

    #[test]
    fn a_plot_without_its_file_is_left_out_of_the_page() {
        let html = sample().html(&|_| None);
        assert!(!html.contains("<figure>"), "{html}");
    }
}
