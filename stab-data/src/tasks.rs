//! The GLUE/SuperGLUE tasks stab knows (methods-spec §3.1–3.2), registered by name so
//! recipes are validated with did-you-mean errors. Readers, templates and splits attach
//! to these names in the task-data work.

use stab_core::TaskEntry;

macro_rules! task {
    ($name:literal, $metric:literal, $summary:literal) => {
        inventory::submit! { TaskEntry { name: $name, summary: $summary, metric: $metric } }
    };
}

task!("cola", "mcc", "CoLA: acceptability of one sentence (GLUE)");
task!("sst2", "accuracy", "SST-2: sentiment of one sentence (GLUE)");
task!("mrpc", "acc_and_f1", "MRPC: paraphrase of a sentence pair (GLUE)");
task!("qqp", "acc_and_f1", "QQP: duplicate question pair (GLUE)");
task!("rte", "accuracy", "RTE: entailment of a premise/hypothesis pair (GLUE)");
task!("wnli", "accuracy", "WNLI: entailment with pronoun resolution (GLUE)");
task!("cb", "acc_and_macro_f1", "CB: 3-way entailment (SuperGLUE)");
task!("wsc", "accuracy", "WSC: coreference of two spans (SuperGLUE, span head)");
task!("boolq", "accuracy", "BoolQ: yes/no question about a passage (SuperGLUE)");
task!("multirc", "em_and_f1a", "MultiRC: answer options of a question (SuperGLUE)");
task!("wic", "accuracy", "WiC: same sense of a word in two sentences (SuperGLUE, span head)");
