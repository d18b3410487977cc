//! Plain table rendering shared by the report sections.

/// A table: header and rows of cells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The table without the columns that hold no value in any row (every cell empty or
    /// "–"): a report never shows a column that says nothing. A table without rows is
    /// returned as it is.
    pub fn without_empty_columns(self) -> Self {
        let empty = |c: usize| {
            !self.rows.is_empty()
                && self.rows.iter().all(|r| {
                    r.get(c)
                        .is_none_or(|v| v.trim().is_empty() || v.trim() == "–")
                })
        };
        let keep: Vec<bool> = (0..self.header.len()).map(|c| !empty(c)).collect();
        self.keep_columns(&keep)
    }

    /// The table with only the columns whose entry in `keep` is true.
    pub fn keep_columns(self, keep: &[bool]) -> Self {
        let pick = |cells: Vec<String>| -> Vec<String> {
            cells
                .into_iter()
                .zip(keep)
                .filter(|(_, k)| **k)
                .map(|(v, _)| v)
                .collect()
        };
        Self {
            header: pick(self.header),
            rows: self.rows.into_iter().map(pick).collect(),
        }
    }

    /// GitHub-flavoured Markdown with aligned columns.
    pub fn markdown(&self) -> String {
        let cols = self.header.len();
        let width = |c: usize| {
            std::iter::once(&self.header[c])
                .chain(self.rows.iter().map(|r| &r[c]))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
                .max(3)
        };
        let widths: Vec<usize> = (0..cols).map(width).collect();
        let line = |cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
                .collect();
            format!("| {} |\n", parts.join(" | "))
        };
        let mut out = line(&self.header);
        out.push_str(&format!(
            "|{}|\n",
            widths
                .iter()
                .map(|w| "-".repeat(w + 2))
                .collect::<Vec<_>>()
                .join("|")
        ));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }

    /// A LaTeX `tabular` with booktabs rules (`\usepackage{booktabs}`).
    pub fn latex(&self, caption: &str) -> String {
        let esc = |s: &str| {
            s.replace('_', "\\_")
                .replace('±', "$\\pm$")
                .replace('%', "\\%")
        };
        let mut out = format!(
            "% {caption}\n\\begin{{tabular}}{{{}}}\n\\toprule\n",
            "l".repeat(self.header.len())
        );
        out.push_str(&format!(
            "{} \\\\\n\\midrule\n",
            self.header
                .iter()
                .map(|h| esc(h))
                .collect::<Vec<_>>()
                .join(" & ")
        ));
        for r in &self.rows {
            out.push_str(&format!(
                "{} \\\\\n",
                r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" & ")
            ));
        }
        out.push_str("\\bottomrule\n\\end{tabular}\n\n");
        out
    }
}

#[cfg(test)]
mod empty_column_tests {
    use super::Table;

    #[test]
    fn columns_without_a_value_are_dropped() {
        let t = Table {
            header: vec!["method".into(), "n = 5".into(), "n = 10".into()],
            rows: vec![
                vec!["finetune".into(), "72.6".into(), "–".into()],
                vec!["mmr".into(), "–".into(), "".into()],
            ],
        }
        .without_empty_columns();
        assert_eq!(t.header, ["method", "n = 5"]);
        assert_eq!(t.rows, [["finetune", "72.6"], ["mmr", "–"]]);
    }
}

/// A number with 4 significant digits, scientific when small or large.
pub fn num(v: f64) -> String {
    if v.is_nan() {
        return "–".to_string();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-2..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        let digits = if a >= 100.0 {
            1
        } else if a >= 1.0 {
            3
        } else {
            4
        };
        format!("{v:.digits$}")
    }
}

/// A factor value or axis tick: integers as integers ("50", not "50.000"), the rest as
/// [`num`] (trailing zeros trimmed).
pub fn label_num(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let s = num(v);
    let trim = |m: &str| {
        if m.contains('.') {
            m.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            m.to_string()
        }
    };
    match s.split_once('e') {
        Some((m, e)) => format!("{}e{e}", trim(m)),
        None => trim(&s),
    }
}

/// "mean ± sd".
pub fn mean_sd(mean: f64, sd: f64) -> String {
    format!("{} ± {}", num(mean), num(sd))
}

/// A CSV field (quoted when needed).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_tables() {
        assert_eq!(num(0.5), "0.5000");
        assert_eq!(num(12.345), "12.345");
        assert_eq!(num(0.00012345), "1.234e-4");
        assert_eq!(mean_sd(1.0, 0.25), "1.000 ± 0.2500");
        assert_eq!(label_num(50.0), "50");
        assert_eq!(label_num(0.5), "0.5");
        assert_eq!(label_num(0.05), "0.05");
        assert_eq!(label_num(2.5e-6), "2.5e-6");
        assert_eq!(label_num(1e-3), "1e-3");
        let t = Table {
            header: vec!["a".into(), "bb".into()],
            rows: vec![vec!["1".into(), "2".into()]],
        };
        assert_eq!(
            t.markdown(),
            "| a   | bb  |\n|-----|-----|\n| 1   | 2   |\n"
        );
        assert_eq!(csv_field("x,y"), "\"x,y\"");
    }
}
