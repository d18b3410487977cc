//! `stab report DIR --html`: one self-contained page, `DIR/report.html`, holding the
//! report's tables and its SVG plots inline (no scripts, no external files), so it can be
//! mailed or attached as it is.

use std::collections::BTreeSet;
use std::path::Path;

use super::doc::{Doc, esc, figure};

/// Write `dir/report.html`: the report's document with each plot inline where the
/// document places it, then the other SVG plots under "More plots".
pub fn write_page(
    dir: &Path,
    title: &str,
    doc: &Doc,
    plots: &[std::path::PathBuf],
) -> stab_core::Result<std::path::PathBuf> {
    // In the order the plots were written, which "More plots" keeps.
    let mut svgs: Vec<(String, String)> = Vec::new();
    for p in plots {
        let svg = std::fs::read_to_string(p)
            .map_err(|e| stab_core::atomic::io_error("read the plot", p, e))?;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        svgs.push((name, svg));
    }
    let mut body = doc.html(&|file| {
        svgs.iter()
            .find(|(name, _)| name == file)
            .map(|(_, svg)| svg.clone())
    });
    let placed: BTreeSet<&str> = doc.plot_files().into_iter().collect();
    let rest: String = svgs
        .iter()
        .filter(|(name, _)| !placed.contains(name.as_str()))
        .map(|(name, svg)| figure(svg, &esc(name)))
        .collect();
    if !rest.is_empty() {
        body.push_str("<h2>More plots</h2>\n");
        body.push_str(&rest);
    }
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n<style>\nbody {{ font-family: sans-serif; margin: 2em auto; padding: 0 1.5em; max-width: 1400px; color: #222; }}\n.wide {{ overflow-x: auto; }}\ntable {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}\nth, td {{ border-bottom: 1px solid #ccc; padding: 0.25em 0.75em; text-align: left; white-space: nowrap; }}\nthead th {{ border-bottom: 2px solid #444; }}\nfigure {{ display: inline-block; vertical-align: top; margin: 1em 1em 1em 0; max-width: 48%; }}\nfigure svg {{ max-width: 100%; height: auto; }}\nli {{ margin: 0.3em 0; }}\nfigcaption {{ color: #666; font-size: 0.85em; }}\n</style>\n</head>\n<body>\n<h1>{t}</h1>\n{body}</body>\n</html>\n",
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
    fn the_page_is_self_contained_with_inline_svg() {
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("p.svg");
        std::fs::write(
            &svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\"><rect/></svg>",
        )
        .unwrap();
        let mut doc = Doc::new();
        doc.heading("T");
        let page = write_page(dir.path(), "r", &doc, &[svg]).unwrap();
        let html = std::fs::read_to_string(page).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<svg xmlns") && html.contains("<figcaption>p.svg</figcaption>"));
        assert!(!html.contains("<script") && !html.contains("src="));
    }
}
