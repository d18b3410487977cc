//! `stab report DIR --html`: one self-contained page, `DIR/report.html`, holding the
//! report's tables and its SVG plots inline (no scripts, no external files), so it can be
//! mailed or attached as it is.

use std::path::Path;

/// Escape text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline Markdown of the report's prose: `**bold**` and `` `code` ``, after escaping.
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

/// The report's Markdown (headings, paragraphs, `- ` lists, pipe tables, image lines:
/// what [`super::Report::render`] writes) as HTML.
pub fn markdown_to_html(md: &str) -> String {
    let mut out = String::new();
    let mut table: Vec<Vec<String>> = Vec::new();
    let flush = |table: &mut Vec<Vec<String>>, out: &mut String| {
        if table.is_empty() {
            return;
        }
        out.push_str("<table>\n<thead><tr>");
        for h in &table[0] {
            out.push_str(&format!("<th>{}</th>", esc(h)));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for row in table.iter().skip(1) {
            out.push_str("<tr>");
            for c in row {
                out.push_str(&format!("<td>{}</td>", esc(c)));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
        table.clear();
    };
    let mut in_list = false;
    for line in md.lines() {
        let t = line.trim();
        if let Some(item) = t.strip_prefix("- ") {
            flush(&mut table, &mut out);
            if !in_list {
                out.push_str("<ul>\n");
                in_list = true;
            }
            out.push_str(&format!("<li>{}</li>\n", inline(item)));
            continue;
        }
        if in_list {
            out.push_str("</ul>\n");
            in_list = false;
        }
        if t.starts_with('|') {
            let cells: Vec<String> = t
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect();
            if !cells
                .iter()
                .all(|c| !c.is_empty() && c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                table.push(cells);
            }
            continue;
        }
        flush(&mut table, &mut out);
        if let Some((caption, file)) = image_line(t) {
            out.push_str(&format!("<!--plot:{}|{}-->\n", esc(file), esc(caption)));
        } else if let Some(h) = t.strip_prefix("## ") {
            out.push_str(&format!("<h2>{}</h2>\n", esc(h)));
        } else if let Some(h) = t.strip_prefix("# ") {
            out.push_str(&format!("<h1>{}</h1>\n", esc(h)));
        } else if !t.is_empty() {
            out.push_str(&format!("<p>{}</p>\n", inline(t)));
        }
    }
    if in_list {
        out.push_str("</ul>\n");
    }
    flush(&mut table, &mut out);
    out
}

/// `![caption](file)` → (caption, file).
fn image_line(t: &str) -> Option<(&str, &str)> {
    let rest = t.strip_prefix("![")?;
    let (caption, rest) = rest.split_once("](")?;
    Some((caption, rest.strip_suffix(')')?))
}

/// Write `dir/report.html`: the Markdown report as HTML with each plot inline where the
/// report places it (an image line), then the other SVG plots.
pub fn write_page(
    dir: &Path,
    title: &str,
    markdown: &str,
    plots: &[std::path::PathBuf],
) -> anyhow::Result<std::path::PathBuf> {
    let mut body = markdown_to_html(markdown);
    let mut rest = String::new();
    for p in plots {
        let svg = std::fs::read_to_string(p)?;
        let svg = svg.trim_start_matches(|c| c != '<');
        let name = esc(&p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default());
        let figure = |caption: &str| {
            format!("<figure>\n{svg}\n<figcaption>{caption}</figcaption>\n</figure>\n")
        };
        // A placed plot's marker: `<!--plot:FILE|CAPTION-->`.
        let start = format!("<!--plot:{name}|");
        if let Some(at) = body.find(&start) {
            let end = body[at..].find("-->").map_or(body.len(), |e| at + e + 3);
            let caption = body[at + start.len()..end - 3].to_string();
            body.replace_range(at..end, &figure(&caption));
        } else {
            rest.push_str(&figure(&name));
        }
    }
    if !rest.is_empty() {
        body.push_str("<h2>More plots</h2>\n");
        body.push_str(&rest);
    }
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n<style>\nbody {{ font-family: sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }}\ntable {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}\nth, td {{ border-bottom: 1px solid #ccc; padding: 0.25em 0.75em; text-align: left; white-space: nowrap; }}\nthead th {{ border-bottom: 2px solid #444; }}\nfigure {{ display: inline-block; vertical-align: top; margin: 1em 1em 1em 0; max-width: 48%; }}\nfigure svg {{ max-width: 100%; height: auto; }}\nli {{ margin: 0.3em 0; }}\nfigcaption {{ color: #666; font-size: 0.85em; }}\n</style>\n</head>\n<body>\n<h1>{t}</h1>\n{body}</body>\n</html>\n",
        t = esc(title)
    );
    let path = dir.join("report.html");
    stab_core::atomic::write_file(&path, page.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_headings_and_paragraphs_become_html() {
        let md = "## Title <x>\n\nSome text & more.\n\n| a | b |\n|---|---|\n| 1 | 2±3 |\n";
        let html = markdown_to_html(md);
        assert!(html.contains("<h2>Title &lt;x&gt;</h2>"), "{html}");
        assert!(html.contains("<p>Some text &amp; more.</p>"), "{html}");
        assert!(html.contains("<th>a</th><th>b</th>"), "{html}");
        assert!(html.contains("<td>1</td><td>2±3</td>"), "{html}");
        assert!(!html.contains("---"), "{html}");
    }

    #[test]
    fn the_page_is_self_contained_with_inline_svg() {
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("p.svg");
        std::fs::write(
            &svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\"><rect/></svg>",
        )
        .unwrap();
        let page = write_page(dir.path(), "r", "## T\n", &[svg]).unwrap();
        let html = std::fs::read_to_string(page).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<svg xmlns") && html.contains("<figcaption>p.svg</figcaption>"));
        assert!(!html.contains("<script") && !html.contains("src="));
    }
}
