//! The registry check catches a method schema registered without an implementation (a
//! separate test binary, so the hollow registration stays out of every other test).

use stab_methods as _;

inventory::submit! {
    stab_core::MethodEntry {
        name: "test-hollow",
        summary: "test only: a schema with no implementation",
        params: &[],
        validate: |_| Ok(()),
        cost: 1.0,
    }
}

#[test]
fn a_schema_without_an_implementation_is_named_by_the_registry_check() {
    let hollow = stab_methods::engine::unimplemented_methods();
    assert_eq!(hollow.len(), 1, "{hollow:?}");
    assert!(
        hollow[0].contains("test-hollow") && hollow[0].contains("no implementation"),
        "{hollow:?}"
    );
}
