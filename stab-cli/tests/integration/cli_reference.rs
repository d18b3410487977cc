//! `docs/cli-reference.md` is the `--help` of every command; it must not drift from the flags.

use std::path::Path;

#[test]
fn the_cli_reference_page_is_the_help_of_every_command() {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli-reference.md");
    let now = stab_cli::cli_reference();
    for cmd in [
        "## `stab run`",
        "## `stab report`",
        "## `stab analyze loo`",
        "--jobs",
    ] {
        assert!(now.contains(cmd), "the reference lacks {cmd}");
    }
    if std::env::var_os("STAB_BLESS").is_some() {
        std::fs::write(&page, &now).expect("write docs/cli-reference.md");
        return;
    }
    let then = std::fs::read_to_string(&page).unwrap_or_default();
    assert!(
        then == now,
        "docs/cli-reference.md is out of date with the CLI's flags: run `STAB_BLESS=1 cargo test -p stab-cli --test integration cli_reference` and commit the page"
    );
}
