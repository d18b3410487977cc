//! Did-you-mean suggestions for unknown names (recipe keys, methods, tasks, factors).

/// Levenshtein edit distance between two strings (by Unicode scalar values).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate nearest to `name`, if it is plausibly what was meant: within an edit
/// distance of max(2, len/3), or a case-insensitive prefix/substring match.
pub fn nearest<'a, I>(name: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = name.to_lowercase();
    let candidates: Vec<&'a str> = candidates.into_iter().collect();
    // Other tools' spellings of stab's keys (Hugging Face's TrainingArguments and
    // run_glue.py): no edit distance links `learning_rate` to `lr`.
    if let Some(&(_, ours)) = SYNONYMS.iter().find(|(theirs, _)| *theirs == lower)
        && let Some(c) = candidates.iter().find(|c| **c == ours)
    {
        return Some(c);
    }
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        let cl = c.to_lowercase();
        let mut d = edit_distance(&lower, &cl);
        if !lower.is_empty() && (cl.starts_with(&lower) || lower.starts_with(&cl)) {
            d = d.min(1);
        }
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let limit = (name.chars().count() / 3).max(2);
    best.filter(|(d, _)| *d <= limit).map(|(_, c)| c)
}

/// (another tool's name, stab's).
const SYNONYMS: [(&str, &str); 14] = [
    ("learning_rate", "lr"),
    ("num_train_epochs", "epochs"),
    ("num_epochs", "epochs"),
    ("per_device_train_batch_size", "batch_size"),
    ("train_batch_size", "batch_size"),
    ("warmup_ratio", "warmup"),
    ("max_grad_norm", "grad_clip"),
    ("max_seq_length", "max_len"),
    ("max_length", "max_len"),
    ("model_name_or_path", "path"),
    ("eval_steps", "eval_every"),
    ("early_stopping_patience", "patience"),
    ("seed", "seeds"),
    ("task_name", "tasks"),
];

/// " did you mean `x`?" or an empty string.
pub fn did_you_mean<'a, I>(name: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    match nearest(name, candidates) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("lr", "lr"), 0);
    }

    #[test]
    fn nearest_finds_typos_and_rejects_noise() {
        let keys = ["epochs", "batch_size", "lr", "warmup", "weight_decay"];
        assert_eq!(nearest("epoch", keys), Some("epochs"));
        assert_eq!(nearest("batchsize", keys), Some("batch_size"));
        assert_eq!(nearest("weight_decy", keys), Some("weight_decay"));
        assert_eq!(nearest("zzzzzzzz", keys), None);
        assert_eq!(nearest("mhlos", ["mmr", "mhloss", "surt"]), Some("mhloss"));
    }
}
