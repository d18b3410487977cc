//! The synthetic grid: one run per (study, factor value), each value applied to the base
//! settings by its study and the fixed settings checked whatever the value.

use std::collections::BTreeMap;

use crate::error::InputError;
use crate::params::MethodParams;
use crate::recipe::Recipe;
use crate::registry;
use crate::synthetic::{SyntheticSettings, SyntheticTable};

use super::spec::{RunJob, RunSpec};

fn overlay(s: &mut SyntheticSettings, t: &SyntheticTable) {
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = &t.$f { s.$f = v.get_ref().clone(); } )* };
    }
    set!(
        datasets,
        points,
        dim,
        steps,
        checkpoints,
        loo_samples,
        heads,
        init_std,
        mu,
        svm_c,
        svm_tol,
        gd_loo,
        seed
    );
    let margin = t.margin.as_ref().map_or(s.margin, |v| *v.get_ref());
    let bound = t.bound.as_ref().map_or(s.bound, |v| *v.get_ref());
    s.set_margin_and_bound(margin, bound);
}

pub(super) fn plan_synthetic(recipe: &Recipe) -> Result<Vec<RunSpec>, InputError> {
    let top = recipe.body.synthetic.as_ref().expect("shape checked");
    let entries: Vec<(&SyntheticTable, String)> = match &top.studies {
        Some(list) if !list.is_empty() => {
            if top.factor.is_some() || top.values.is_some() {
                return Err(recipe
                    .error(
                        "synthetic.factor",
                        "use either `factor` in [synthetic] or [[synthetic.studies]], not both",
                    )
                    .hint("move `factor`/`values` into a [[synthetic.studies]] entry"));
            }
            list.iter()
                .enumerate()
                .map(|(i, t)| (t, format!("synthetic.studies[{i}]")))
                .collect()
        }
        Some(_) => {
            return Err(recipe
                .error("synthetic.studies", "`studies` is empty")
                .hint("add at least one [[synthetic.studies]] entry with a factor"));
        }
        None => vec![(top, "synthetic".to_string())],
    };
    let mut runs = Vec::new();
    for (table, path) in entries {
        if table.studies.is_some() {
            return Err(recipe.error(&format!("{path}.studies"), "studies cannot be nested"));
        }
        let Some(factor) = &table.factor else {
            let names: Vec<&str> = registry::studies().iter().map(|e| e.factor).collect();
            return Err(recipe
                .error(&path, "missing `factor`")
                .hint(format!("set factor to one of: {}", names.join(", "))));
        };
        let study = registry::study(factor.get_ref()).map_err(|e| {
            let mut located = recipe.error_at(factor.span(), &format!("{path}.factor"), e.message);
            located.hint = e.hint;
            located
        })?;
        let steps = table
            .steps
            .as_ref()
            .or(top.steps.as_ref())
            .map_or(study.default_steps(), |s| *s.get_ref());
        let mut base = SyntheticSettings::defaults(study.factor(), steps);
        if !std::ptr::eq(table, top) {
            overlay(&mut base, top);
        }
        overlay(&mut base, table);
        let explicit_checkpoints = table.checkpoints.is_some() || top.checkpoints.is_some();
        if !explicit_checkpoints {
            base.checkpoints = SyntheticSettings::default_checkpoints(base.steps);
        }
        check_base(recipe, &path, table, top, &base)?;
        let values = match &table.values {
            Some(v) if v.get_ref().is_empty() => {
                return Err(recipe
                    .error_at(v.span(), &format!("{path}.values"), "`values` is empty")
                    .hint(format!(
                        "list at least one value, e.g. values = {:?} (the paper's), or omit `values`",
                        study.default_values()
                    )));
            }
            Some(v) if v.get_ref().len() > 10_000 => {
                return Err(recipe
                    .error_at(
                        v.span(),
                        &format!("{path}.values"),
                        format!("`values` lists {} values; at most 10000", v.get_ref().len()),
                    )
                    .hint("one run per value: split the study into several recipes"));
            }
            Some(v) => v.get_ref().clone(),
            None => study.default_values(),
        };
        for value in values {
            let settings = study.apply(&base, value).map_err(|m| {
                let span = table.values.as_ref().map(|v| v.span());
                let key = format!("{path}.values");
                let at = match span {
                    Some(span) => recipe.error_at(span, &key, ""),
                    None => recipe.error(&key, ""),
                };
                m.at(at.hint("change the value, or the fixed settings it combines with"))
            })?;
            let mut sweep = BTreeMap::new();
            sweep.insert(study.factor().to_string(), serde_json::json!(value));
            let spec = RunSpec {
                run_id: String::new(),
                recipe: recipe.name().to_string(),
                task: "synthetic".to_string(),
                method: study.factor().to_string(),
                method_params: MethodParams::new(),
                seed: settings.seed,
                sweep,
                job: RunJob::Synthetic(settings),
                method_train: BTreeMap::new(),
                sequential: None,
                tune: None,
            };
            runs.push(spec.with_id(&format!("{}-{}", study.factor(), value)));
        }
    }
    Ok(runs)
}

/// Checks of the fixed settings that hold whatever the factor value.
/// Where a synthetic setting is written: the study's table, else the top `[synthetic]`.
struct At<'a> {
    recipe: &'a Recipe,
    path: &'a str,
    table: &'a SyntheticTable,
    top: &'a SyntheticTable,
}

impl At<'_> {
    /// An input error at `key` of this table (at its span when known).
    fn err(&self, key: &str, span: Option<std::ops::Range<usize>>, msg: String) -> InputError {
        let full = format!("{}.{key}", self.path);
        match span {
            Some(sp) => self.recipe.error_at(sp, &full, msg),
            None => self.recipe.error(&full, msg),
        }
    }
}

/// The span of a setting: the study's table, else the top table.
macro_rules! span {
    ($at:expr, $f:ident) => {
        $at.table
            .$f
            .as_ref()
            .or($at.top.$f.as_ref())
            .map(|v| v.span())
    };
}

fn check_base(
    recipe: &Recipe,
    path: &str,
    table: &SyntheticTable,
    top: &SyntheticTable,
    s: &SyntheticSettings,
) -> Result<(), InputError> {
    let at = At {
        recipe,
        path,
        table,
        top,
    };
    check_finite(&at, s)?;
    check_sizes(&at, s)?;
    check_steps_and_loo(&at, s)?;
    check_geometry(&at, s)?;
    check_counts(&at, s)
}

/// Every float and factor value finite (TOML can spell nan and inf).
fn check_finite(at: &At<'_>, s: &SyntheticSettings) -> Result<(), InputError> {
    // Every float finite (TOML can spell nan and inf).
    for (key, v, sp) in [
        ("margin", s.margin, span!(at, margin)),
        ("bound", s.bound, span!(at, bound)),
        ("init_std", s.init_std, span!(at, init_std)),
        ("mu", s.mu, span!(at, mu)),
        ("svm_c", s.svm_c, span!(at, svm_c)),
        ("svm_tol", s.svm_tol, span!(at, svm_tol)),
    ] {
        if !v.is_finite() {
            return Err(at
                .err(key, sp, format!("{key} = {v} is not a finite number"))
                .hint("use a finite value"));
        }
    }
    if let Some(v) = at
        .table
        .values
        .as_ref()
        .filter(|v| v.get_ref().iter().any(|x| !x.is_finite()))
    {
        return Err(at
            .err(
                "values",
                Some(v.span()),
                "`values` holds a non-finite number".into(),
            )
            .hint("use finite factor values"));
    }
    Ok(())
}

/// Sizes within what a study can use (`crate::limits`).
fn check_sizes(at: &At<'_>, s: &SyntheticSettings) -> Result<(), InputError> {
    // Sizes: bounded by what a study can use (`crate::limits`), so no input asks for
    // absurd memory or time.
    use crate::limits;
    for (key, v, limit, sp) in [
        (
            "datasets",
            s.datasets as u64,
            limits::DATASETS,
            span!(at, datasets),
        ),
        ("points", s.points as u64, limits::POINTS, span!(at, points)),
        ("heads", s.heads as u64, limits::HEADS, span!(at, heads)),
        ("steps", s.steps, limits::GD_STEPS, span!(at, steps)),
        (
            "loo_samples",
            s.loo_samples as u64,
            limits::LOO_SAMPLES,
            span!(at, loo_samples),
        ),
    ] {
        if v > limit.max {
            return Err(at
                .err(
                    key,
                    sp,
                    format!("{key} = {v} is too large; at most {}", limit.max),
                )
                .hint(limit.hint));
        }
    }
    Ok(())
}

/// GD steps, left-out samples and checkpoints that leave something to compute.
fn check_steps_and_loo(at: &At<'_>, s: &SyntheticSettings) -> Result<(), InputError> {
    if s.steps == 0 {
        return Err(at
            .err(
                "steps",
                span!(at, steps),
                "steps = 0 leaves nothing to compute".into(),
            )
            .hint("GD needs at least one iteration, e.g. steps = 1000"));
    }
    if s.loo_samples == 0 && (s.gd_loo || s.factor == "heads" || s.factor == "distance") {
        return Err(at
            .err(
                "loo_samples",
                span!(at, loo_samples),
                "loo_samples = 0 leaves no left-out point to measure".into(),
            )
            .hint("the default is 10"));
    }
    if s.loo_samples > s.points {
        return Err(at
            .err(
                "loo_samples",
                span!(at, loo_samples),
                format!(
                    "loo_samples = {} exceeds points = {}",
                    s.loo_samples, s.points
                ),
            )
            .hint("sample at most as many left-out points as there are points"));
    }
    if s.checkpoints.is_empty() {
        return Err(at
            .err(
                "checkpoints",
                span!(at, checkpoints),
                "`checkpoints` is empty".into(),
            )
            .hint("e.g. checkpoints = [10, 100, 1000], or omit it"));
    }
    Ok(())
}

/// The two balls fit: 0 < margin < bound (unless margin is the factor).
fn check_geometry(at: &At<'_>, s: &SyntheticSettings) -> Result<(), InputError> {
    if s.factor != "margin" && s.margin >= s.bound {
        let span = span!(at, margin).or(span!(at, bound));
        return Err(at
            .err(
                "margin",
                span,
                format!(
                    "margin γ = {} must be smaller than bound B = {}",
                    s.margin, s.bound
                ),
            )
            .hint("the balls have radius (B − γ)/2 > 0; e.g. margin = 0.5, bound = 3"));
    }
    if s.factor != "margin" && s.margin <= 0.0 {
        return Err(at
            .err(
                "margin",
                span!(at, margin),
                format!("margin γ = {} must be positive", s.margin),
            )
            .hint("e.g. margin = 0.5"));
    }
    Ok(())
}

/// Counts, solver settings and checkpoint order.
fn check_counts(at: &At<'_>, s: &SyntheticSettings) -> Result<(), InputError> {
    if s.datasets == 0 {
        return Err(at
            .err(
                "datasets",
                span!(at, datasets),
                "datasets must be at least 1".into(),
            )
            .hint("the paper uses 500"));
    }
    if s.points < 4 {
        return Err(at
            .err(
                "points",
                span!(at, points),
                format!("points = {} is too few; need at least 4", s.points),
            )
            .hint("the paper uses 2000"));
    }
    if s.dim == 0 || s.dim > 64 {
        return Err(at
            .err(
                "dim",
                span!(at, dim),
                format!("dim = {} is out of range; expected 1..=64", s.dim),
            )
            .hint("the default is 2"));
    }
    if s.heads == 0 {
        return Err(at.err("heads", span!(at, heads), "heads must be at least 1".into()));
    }
    if s.svm_c <= 0.0 || s.svm_tol <= 0.0 || s.mu < 0.0 || s.init_std < 0.0 {
        return Err(at.err(
            "svm_c",
            None,
            "svm_c and svm_tol must be positive, mu and init_std non-negative".into(),
        ));
    }
    let cps = &s.checkpoints;
    if cps.iter().any(|&t| t == 0 || t > s.steps) || cps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(at
            .err(
                "checkpoints",
                span!(at, checkpoints),
                format!(
                    "checkpoints {cps:?} must increase strictly within 1..={}",
                    s.steps
                ),
            )
            .hint("e.g. checkpoints = [10, 100, 1000] with steps = 1000"));
    }
    Ok(())
}
