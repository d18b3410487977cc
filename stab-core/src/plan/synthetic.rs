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
            };
            runs.push(spec.with_id(&format!("{}-{}", study.factor(), value)));
        }
    }
    Ok(runs)
}

/// Checks of the fixed settings that hold whatever the factor value.
fn check_base(
    recipe: &Recipe,
    path: &str,
    table: &SyntheticTable,
    top: &SyntheticTable,
    s: &SyntheticSettings,
) -> Result<(), InputError> {
    let at = |key: &str, span: Option<std::ops::Range<usize>>, msg: String| {
        let full = format!("{path}.{key}");
        match span {
            Some(sp) => recipe.error_at(sp, &full, msg),
            None => recipe.error(&full, msg),
        }
    };
    macro_rules! span {
        ($f:ident) => {
            table.$f.as_ref().or(top.$f.as_ref()).map(|v| v.span())
        };
    }
    // Every float finite (TOML can spell nan and inf).
    for (key, v, sp) in [
        ("margin", s.margin, span!(margin)),
        ("bound", s.bound, span!(bound)),
        ("init_std", s.init_std, span!(init_std)),
        ("mu", s.mu, span!(mu)),
        ("svm_c", s.svm_c, span!(svm_c)),
        ("svm_tol", s.svm_tol, span!(svm_tol)),
    ] {
        if !v.is_finite() {
            return Err(at(key, sp, format!("{key} = {v} is not a finite number"))
                .hint("use a finite value"));
        }
    }
    if let Some(v) = table
        .values
        .as_ref()
        .filter(|v| v.get_ref().iter().any(|x| !x.is_finite()))
    {
        return Err(at(
            "values",
            Some(v.span()),
            "`values` holds a non-finite number".into(),
        )
        .hint("use finite factor values"));
    }
    // Sizes: bounded by what a study can use (`crate::limits`), so no input asks for
    // absurd memory or time.
    use crate::limits;
    for (key, v, limit, sp) in [
        (
            "datasets",
            s.datasets as u64,
            limits::DATASETS,
            span!(datasets),
        ),
        ("points", s.points as u64, limits::POINTS, span!(points)),
        ("heads", s.heads as u64, limits::HEADS, span!(heads)),
        ("steps", s.steps, limits::GD_STEPS, span!(steps)),
        (
            "loo_samples",
            s.loo_samples as u64,
            limits::LOO_SAMPLES,
            span!(loo_samples),
        ),
    ] {
        if v > limit.max {
            return Err(at(
                key,
                sp,
                format!("{key} = {v} is too large; at most {}", limit.max),
            )
            .hint(limit.hint));
        }
    }
    if s.steps == 0 {
        return Err(at(
            "steps",
            span!(steps),
            "steps = 0 leaves nothing to compute".into(),
        )
        .hint("GD needs at least one iteration, e.g. steps = 1000"));
    }
    if s.loo_samples == 0 && (s.gd_loo || s.factor == "heads" || s.factor == "distance") {
        return Err(at(
            "loo_samples",
            span!(loo_samples),
            "loo_samples = 0 leaves no left-out point to measure".into(),
        )
        .hint("the default is 10"));
    }
    if s.loo_samples > s.points {
        return Err(at(
            "loo_samples",
            span!(loo_samples),
            format!(
                "loo_samples = {} exceeds points = {}",
                s.loo_samples, s.points
            ),
        )
        .hint("sample at most as many left-out points as there are points"));
    }
    if s.checkpoints.is_empty() {
        return Err(at(
            "checkpoints",
            span!(checkpoints),
            "`checkpoints` is empty".into(),
        )
        .hint("e.g. checkpoints = [10, 100, 1000], or omit it"));
    }
    if s.factor != "margin" && s.margin >= s.bound {
        let span = span!(margin).or(span!(bound));
        return Err(at(
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
        return Err(at(
            "margin",
            span!(margin),
            format!("margin γ = {} must be positive", s.margin),
        )
        .hint("e.g. margin = 0.5"));
    }
    if s.datasets == 0 {
        return Err(at(
            "datasets",
            span!(datasets),
            "datasets must be at least 1".into(),
        )
        .hint("the paper uses 500"));
    }
    if s.points < 4 {
        return Err(at(
            "points",
            span!(points),
            format!("points = {} is too few; need at least 4", s.points),
        )
        .hint("the paper uses 2000"));
    }
    if s.dim == 0 || s.dim > 64 {
        return Err(at(
            "dim",
            span!(dim),
            format!("dim = {} is out of range; expected 1..=64", s.dim),
        )
        .hint("the default is 2"));
    }
    if s.heads == 0 {
        return Err(at("heads", span!(heads), "heads must be at least 1".into()));
    }
    if s.svm_c <= 0.0 || s.svm_tol <= 0.0 || s.mu < 0.0 || s.init_std < 0.0 {
        return Err(at(
            "svm_c",
            None,
            "svm_c and svm_tol must be positive, mu and init_std non-negative".into(),
        ));
    }
    let cps = &s.checkpoints;
    if cps.iter().any(|&t| t == 0 || t > s.steps) || cps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(at(
            "checkpoints",
            span!(checkpoints),
            format!(
                "checkpoints {cps:?} must increase strictly within 1..={}",
                s.steps
            ),
        )
        .hint("e.g. checkpoints = [10, 100, 1000] with steps = 1000"));
    }
    Ok(())
}
