//! `stab list [methods|tasks|factors|models|devices]`

use clap::{Args, ValueEnum};
use stab_core::registry;

#[derive(Clone, Copy, ValueEnum)]
pub enum What {
    Methods,
    Tasks,
    Factors,
    Models,
    Devices,
}

#[derive(Args)]
pub struct ListArgs {
    /// What to list (default: everything).
    what: Option<What>,
}

pub fn list(args: ListArgs) -> stab_core::Result<()> {
    let all = args.what.is_none();
    if all || matches!(args.what, Some(What::Methods)) {
        outln!("methods ([[methods]] name = ...):");
        for m in registry::methods() {
            let defaults =
                stab_core::params::resolve_params(m.name, m.params, &toml::Table::new())?;
            let state = match stab_train::build(m.name, &defaults) {
                Ok(_) => String::new(),
                Err(why) => format!(" [not runnable in this build: {why}]"),
            };
            outln!("  {:<10} {}{state}", m.name, m.summary);
            for p in m.params {
                outln!(
                    "      {:<15} = {:<10} {} — {}",
                    p.name,
                    p.default_text(),
                    p.kind_text(),
                    p.doc
                );
            }
        }
    }
    if all || matches!(args.what, Some(What::Tasks)) {
        outln!("tasks ([data] tasks = [...]; Hub dataset of source = \"hub\"):");
        for t in registry::tasks() {
            let hub = stab_data::task_def(t.name)
                .map(|d| format!("{}:{}", d.hub.0, d.hub.1))
                .unwrap_or_default();
            outln!(
                "  {:<10} {:<18} {:<26} {}",
                t.name,
                t.metric,
                hub,
                t.summary
            );
        }
    }
    if all || matches!(args.what, Some(What::Factors)) {
        outln!("synthetic factors ([synthetic] factor = ...):");
        for s in registry::studies() {
            let study = (s.build)();
            outln!(
                "  {:<10} {} (default values {:?}, steps {})",
                s.factor,
                s.summary,
                study.default_values(),
                study.default_steps()
            );
        }
    }
    if all || matches!(args.what, Some(What::Models)) {
        outln!(
            "models ([model] path = DIR or hub id; model types {}):",
            stab_models::config::supported_model_types().join(", ")
        );
        for f in stab_models::families::FAMILIES.iter().map(|f| &f.info) {
            outln!(
                "  {:<11} {:<11} e.g. {}",
                f.model_type,
                f.name,
                f.hub_ids.join(", ")
            );
            outln!("      pooler: {}", f.pooler);
            outln!("      SURT's LM head: {}", f.mlm);
            outln!("      methods: {}", f.notes);
        }
        let cache = stab_models::source::cached_models();
        outln!("in the Hugging Face cache:");
        if cache.is_empty() {
            outln!("  (none; local directories work as they are)");
        }
        for m in cache {
            let kind = stab_models::source::cached_model_dir(&m)
                .and_then(|d| stab_models::EncoderConfig::from_dir(&d).ok())
                .map_or_else(
                    || "incomplete, or not a supported encoder".to_string(),
                    |c| c.family.name().to_string(),
                );
            outln!("  {m:<40} {kind}");
        }
    }
    if all || matches!(args.what, Some(What::Devices)) {
        outln!("devices (--device ...; name, type, whether it computes in f64):");
        for line in crate::device::list() {
            outln!("{line}");
        }
    }
    Ok(())
}
