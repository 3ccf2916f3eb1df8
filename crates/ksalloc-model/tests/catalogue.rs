//! The bad-input catalogue: every case gets its documented status, changes no state and
//! leaks nothing.

use ksalloc_model::catalogue::{cases, run};

#[test]
fn catalogue_has_at_least_forty_cases_with_distinct_names() {
    let all = cases();
    assert!(all.len() >= 40, "only {} cases", all.len());
    let mut names: Vec<_> = all.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len(), "case names must be distinct");
}

#[test]
fn every_catalogue_case_gets_its_documented_status_and_changes_nothing() {
    let all = cases();
    println!("catalogue: {} cases", all.len());
    let failures: Vec<String> = all.iter().filter_map(|case| run(case).err()).collect();
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
